/* Labels for stacked table cells on narrow screens (admin-narrow.css): each body cell of a
   tabular inline gets its column's heading as data-label, unless the template set one. Rows
   added or replaced later (a live refresh) are labelled too. No dependencies, no build step. */
(function () {
  "use strict";
  var TABLES = ".inline-group .tabular table, table.stack-narrow";

  function label(table) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head) return;
    var names = Array.prototype.map.call(head.cells, function (cell) {
      return cell.textContent.trim();
    });
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        Array.prototype.forEach.call(row.cells, function (cell, index) {
          if (names[index] && !cell.hasAttribute("data-label")) {
            cell.setAttribute("data-label", names[index]);
          }
        });
      });
    });
  }

  function labelAll() {
    document.querySelectorAll(TABLES).forEach(label);
  }

  var pending = false;
  function later() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      labelAll();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    labelAll();
    new MutationObserver(later).observe(document.body, { childList: true, subtree: true });
  });
})();
