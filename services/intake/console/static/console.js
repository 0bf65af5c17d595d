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

  // The operator desk: while a call is typed in, ask where the router would send it and
  // whether the caller has petitions still being handled.
  var desk = document.getElementById("desk");
  var suggestion = document.getElementById("suggestion");
  if (desk && suggestion) {
    var timer = null;
    var asked = 0;
    var ask = function () {
      var sent = ++asked;
      var data = new FormData(desk);
      fetch(suggestion.dataset.url, {method: "POST", body: data, credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (found) {
          if (found === null || sent !== asked) {
            return;
          }
          var text = document.getElementById("suggestion-text");
          var s = found.suggestion;
          if (s) {
            var confidence = s.confidence === null ? "" : "，置信度 " + Math.round(s.confidence * 100) + "%";
            text.textContent = "建议类别：" + (s.category || "未能判断") + confidence + "；建议承办单位：" +
              s.department.name + "（规则 " + s.rule + "）" + (s.triage ? "，将由分派台人工分派" : "") +
              (s.repeat_of ? "；此诉求与该来电人此前的诉求重复，将转原承办单位" : "");
          } else {
            text.textContent = "暂无建议（路由服务未响应或内容太少）。";
          }
          var warning = document.getElementById("caller-warning");
          if (found.open_petitions > 0) {
            warning.textContent = "注意：该来电人有 " + found.open_petitions + " 件诉求正在办理中，可在“诉求查询”中按号码查看。";
            warning.hidden = false;
          } else {
            warning.hidden = true;
          }
        })
        .catch(function () { /* no suggestion: the call goes on */ });
    };
    desk.addEventListener("input", function (event) {
      if (["title", "content", "address", "phone", "kind"].indexOf(event.target.name) < 0) {
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(ask, 400);
    });
  }

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
