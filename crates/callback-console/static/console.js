// The console's small enhancements: a confirmation before forms that act,
// and the live tail. Every page works without them except the live tail.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("DOMContentLoaded", function () {
  var rows = document.getElementById("tail-rows");
  if (!rows) return;
  var toggle = document.getElementById("tail-toggle");
  var paused = false;
  var held = [];
  var source = new EventSource(rows.getAttribute("data-stream"));
  var cell = function (text) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    return td;
  };
  var show = function (a) {
    var tr = document.createElement("tr");
    tr.className = a.outcome === "success" ? "ok" : "failed";
    var link = document.createElement("a");
    link.href = "/console/tasks/" + a.task_id;
    link.textContent = a.task_id;
    var idCell = document.createElement("td");
    idCell.className = "mono";
    idCell.appendChild(link);
    tr.appendChild(cell(a.started_at.replace("T", " ").slice(0, 19)));
    tr.appendChild(idCell);
    tr.appendChild(cell(a.app));
    tr.appendChild(cell(a.receiver));
    tr.appendChild(cell(a.status_code != null ? a.status_code + " " + a.outcome : a.outcome));
    tr.appendChild(cell(a.duration_ms + " ms"));
    tr.appendChild(cell(a.error));
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > 500) rows.removeChild(rows.lastChild);
    var waiting = document.getElementById("tail-waiting");
    if (waiting) waiting.remove();
  };
  source.addEventListener("attempt", function (event) {
    var attempt = JSON.parse(event.data);
    if (paused) held.push(attempt); else show(attempt);
  });
  toggle.addEventListener("click", function () {
    paused = !paused;
    toggle.textContent = paused ? toggle.getAttribute("data-resume") : toggle.getAttribute("data-pause");
    if (!paused) { held.forEach(show); held = []; }
  });
});
