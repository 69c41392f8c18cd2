// The inbox, live: on each "thread" event from /inbox/stream, reload the fragment this page shows.
// Without it (no EventSource, stream down) the page works as it is, by reloading.
(function () {
  "use strict";
  var list = document.querySelector("[data-stream]");
  if (!list || !window.EventSource || !list.dataset.live) { return; }
  var pending = false;
  function refresh() {
    if (pending) { return; }
    pending = true;
    fetch(list.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { list.innerHTML = html; } })
      .catch(function () {})
      .then(function () { pending = false; });
  }
  var source = new EventSource(list.dataset.stream);
  source.addEventListener("thread", function (event) {
    var wanted = list.dataset.threadId;
    try {
      if (wanted && String(JSON.parse(event.data).thread_id) !== wanted) { return; }
    } catch (e) { return; }
    refresh();
  });
  document.body.dataset.inboxLive = "on";
})();
