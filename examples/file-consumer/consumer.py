"""File in, file out: send a file to the file_tools agent and save what comes back.

    python examples/file-consumer/consumer.py notes.txt --out ./output

Files up to 16 KiB travel inline in the request; larger ones (up to 25 MiB) are uploaded
first. Results are saved with ``session.save_artifacts(dir)``, inline or uploaded alike.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
from pathlib import Path
from typing import Any

from blocks_network import TaskClient, file_part, text_part

AGENT = "file_tools"
TIMEOUT_S = 60.0


def run(client: TaskClient, path: Path, out_dir: Path) -> dict[str, Any]:
    """Send ``path``, save the artifacts under ``out_dir``; returns the report and paths."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    parts = [text_part("please transform"), file_part(path, content_type=content_type)]
    with client.send_message(AGENT, parts) as session:
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
        if terminal.state != "completed":
            raise RuntimeError(f"task {session.task_id} ended {terminal.state}: {terminal.error}")
        kinds = [ref.KIND for ref in session.list_artifacts()]  # "inline" or "file"
        saved = session.save_artifacts(out_dir)
    report = json.loads((out_dir / "report.json").read_text())
    return {"taskId": session.task_id, "saved": saved, "kinds": kinds, "report": report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send a file to file_tools.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--out", type=Path, default=Path("output"))
    args = parser.parse_args(argv)
    with TaskClient.create(billing_mode="free") as client:
        result = run(client, args.path, args.out)
    for path, kind in zip(result["saved"], result["kinds"], strict=True):
        print(f"saved {path} ({kind})")
    print(json.dumps(result["report"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
