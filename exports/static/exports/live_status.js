/* Live parts of the company, job and index pages: while a check is queued or
 * running, poll the JSON status view and put its texts in place; stop when nothing is queued or
 * running. The element with data-live-status-url says where to ask and whether to start
 * (data-live-active="1"). Texts only (textContent): the server sends no markup. */
(function () {
  "use strict";
  var root = document.querySelector("[data-live-status-url]");
  if (!root) {
    return;
  }
  var url = root.getAttribute("data-live-status-url");
  var every = 3000;

  function setText(selector, text) {
    document.querySelectorAll(selector).forEach(function (element) {
      element.textContent = text;
    });
  }

  function apply(data) {
    var banner = document.getElementById("live-status-banner");
    if (banner) {
      banner.textContent = data.banner || "";
      banner.hidden = !data.banner;
    }
    Object.keys(data.fields || {}).forEach(function (name) {
      setText(
        ".field-" + name + " .readonly, [data-live-field='" + name + "']",
        data.fields[name]
      );
    });
    Object.keys(data.companies || {}).forEach(function (pk) {
      var cells = data.companies[pk];
      Object.keys(cells).forEach(function (name) {
        setText("tr[data-company='" + pk + "'] [data-live-field='" + name + "']", cells[name]);
      });
    });
    root.setAttribute("data-live-active", data.active ? "1" : "0");
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (!data) {
          return;
        }
        apply(data);
        if (data.active) {
          every = (data.poll_seconds || 3) * 1000;
          window.setTimeout(poll, every);
        }
      })
      .catch(function () {
        /* the next page load tries again */
      });
  }

  if (root.getAttribute("data-live-active") === "1") {
    window.setTimeout(poll, every);
  }
})();
