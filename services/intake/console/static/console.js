// The console's own script (no framework, nothing fetched from elsewhere): keyboard
// shortcuts of the forms, and the live queue (server-sent events).
(function () {
  "use strict";

  // Ctrl+Enter (or Cmd+Enter) submits the form being typed in, from a text area too.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.form) {
      event.preventDefault();
      event.target.form.requestSubmit();
    }
  });

  // A form is sent once: a second Enter while the first is on its way does nothing.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sent === "1") {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
  });

  var queue = document.getElementById("queue");
  if (!queue || !window.EventSource) {
    return;
  }
  var live = document.getElementById("live");
  var source = new EventSource(queue.dataset.events);
  var refreshing = false;

  function refresh() {
    if (refreshing) {
      return;
    }
    refreshing = true;
    fetch(queue.dataset.fragment, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (response.redirected || !response.ok) {
          window.location.reload();
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html !== null) {
          queue.innerHTML = html;
          if (live) {
            live.textContent = "队列已更新（" + new Date().toLocaleTimeString("zh-CN") + "）";
          }
        }
      })
      .finally(function () { refreshing = false; });
  }

  source.addEventListener("queue", refresh);
  source.addEventListener("signed-out", function () { window.location.reload(); });
})();
