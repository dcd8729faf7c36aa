"""The file_tools agent: file in, file out.

It reads the ``file`` part (inline when small, uploaded when large: the same
``ctx.download_input_artifact`` call either way) and returns the file upper-cased (text)
or byte-reversed (anything else), plus a JSON report. Artifacts over 16 KiB are uploaded
by the runtime and reach consumers as file references; smaller ones travel inline.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext


def transform(data: bytes, mime_type: str) -> tuple[bytes, str]:
    """``(new bytes, what was done)``: upper-case text, reverse anything else."""
    if mime_type.startswith("text/"):
        return data.decode("utf-8", errors="replace").upper().encode("utf-8"), "upper-cased"
    return data[::-1], "reversed"


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Return the transformed file and a report about it."""
    part = next((p for p in task.request_parts if p.get("partId") == "file"), None)
    if part is None:
        raise ValueError("send a file part with part id 'file'")
    ctx.report_status("reading the file")
    original = ctx.download_input_artifact(part)
    name = original.file_name or "file"
    output, action = transform(original.data, original.mime_type)
    report = {
        "fileName": name,
        "mimeType": original.mime_type,
        "size": len(original.data),
        "sha256": hashlib.sha256(original.data).hexdigest(),
        "action": action,
    }
    return {
        "artifacts": [
            {
                "data": output,
                "mimeType": original.mime_type,
                "fileName": f"{action}-{name}",
                "outputId": "file",
            },
            {
                "data": json.dumps(report, indent=2),
                "mimeType": "application/json",
                "fileName": "report.json",
                "outputId": "report",
            },
        ]
    }
