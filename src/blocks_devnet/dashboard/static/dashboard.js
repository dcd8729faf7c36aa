// Blocks local network dashboard: live regions over server-sent events, task actions.
// No framework and no build step: the server renders (and escapes) every region.
"use strict";

(function () {
  const live = document.getElementById("live");
  const status = document.createElement("p");
  status.className = "live-status";
  status.setAttribute("role", "status");

  function connect() {
    if (!live) return;
    document.querySelector("main").prepend(status);
    const source = new EventSource("/dashboard/live?" + live.dataset.liveQuery);
    source.addEventListener("open", () => { status.textContent = "live"; status.dataset.state = "live"; });
    source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.dataset.state = "down"; });
    source.addEventListener("region", (event) => {
      const update = JSON.parse(event.data);
      const target = live.querySelector('[data-live="' + CSS.escape(update.id) + '"]');
      if (!target) return;
      // Keep opened "raw JSON" details open across updates.
      const open = Array.from(target.querySelectorAll("details[open]")).map((d) => indexIn(target, d));
      target.innerHTML = update.html;  // server-rendered, every value escaped there
      const details = target.querySelectorAll("details");
      open.forEach((i) => { if (details[i]) details[i].open = true; });
    });
    source.addEventListener("signed-out", () => { source.close(); window.location.reload(); });
    source.addEventListener("gone", () => { source.close(); status.textContent = "not live"; });
  }

  function indexIn(root, element) {
    return Array.prototype.indexOf.call(root.querySelectorAll("details"), element);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const verb = button.dataset.action;
    if (verb === "terminate" && !window.confirm("Terminate this task now?")) return;
    const token = document.querySelector('meta[name="csrf-token"]').content;
    const result = button.parentElement.querySelector(".action-result");
    button.disabled = true;
    try {
      const response = await fetch(
        "/dashboard/tasks/" + encodeURIComponent(button.dataset.task) + "/" + verb,
        { method: "POST", headers: { "X-Dashboard-CSRF": token }, credentials: "same-origin" },
      );
      const body = await response.json();
      if (result) result.textContent = body.ok ? verb + " requested" : body.error.message;
    } catch (error) {
      if (result) result.textContent = "request failed: " + error;
    } finally {
      button.disabled = false;
    }
  });

  connect();
})();
