// whoopadmin's small page helpers: copy buttons, and live DNS status while checks run.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest(".copy-button");
    if (!button) return;
    var value = button.getAttribute("data-copy");
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done);
    } else {
      var area = document.createElement("textarea");
      area.value = value;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      document.body.removeChild(area);
      done();
    }
  });

  // The DNS page polls its status while a check is queued or running, and reloads
  // itself when the result changes, so nobody has to press reload.
  var live = document.getElementById("dns-live");
  if (!live) return;
  var url = live.getAttribute("data-status-url");
  var status = live.getAttribute("data-status");
  var checking = live.getAttribute("data-checking") === "yes";
  var delay = checking ? 2000 : 30000;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        if (data.status !== status || data.checking !== checking) {
          window.location.reload();
          return;
        }
        setTimeout(poll, data.checking ? 2000 : 30000);
      })
      .catch(function () { setTimeout(poll, 30000); });
  }
  setTimeout(poll, delay);
})();
