// A little progressive enhancement for the console; every page works without it.
(function () {
  "use strict";
  // The live run board: server-sent events replace the board as the centres answer.
  var board = document.getElementById("board");
  if (board && board.dataset.live && window.EventSource) {
    var source = new EventSource(board.dataset.live);
    source.onmessage = function (event) {
      var data = JSON.parse(event.data);
      board.innerHTML = data.html;  // rendered and escaped by the server
      var status = document.getElementById("run-status");
      if (status) { status.textContent = data.status_text; status.className = "status-" + data.status; }
      if (data.closed) { source.close(); }
    };
    source.addEventListener("end", function () { source.close(); });
    document.documentElement.classList.add("live");
  }
  // Playbook upload: a chosen file fills the text box, so the form stays a plain POST.
  var file = document.getElementById("playbook-file");
  var text = document.getElementById("playbook-text");
  if (file && text && window.FileReader) {
    file.hidden = false;
    file.addEventListener("change", function () {
      if (!file.files.length) { return; }
      var reader = new FileReader();
      reader.onload = function () { text.value = reader.result; };
      reader.readAsText(file.files[0]);
      var name = document.getElementById("playbook-filename");
      if (name) { name.value = file.files[0].name; }
    });
  }
})();
