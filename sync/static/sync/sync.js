/* Small behaviours of our admin pages, loaded on every page by UNFOLD["SCRIPTS"].
   No library: unfold's own scripts (Alpine, its inlines) stay in charge of everything else. */
(function () {
  "use strict";

  /* The contact list's sync marks: the tooltip is placed beside its mark in the viewport
     (position: fixed), so that the table's scrolling box cannot cut it off. */
  function placeTip(mark) {
    var tip = mark.querySelector(".sync-tip");
    if (!tip) return;
    var box = mark.getBoundingClientRect();
    tip.style.left = "0px";
    tip.style.top = "0px";
    var width = tip.offsetWidth, height = tip.offsetHeight;
    var left = Math.min(box.left, window.innerWidth - width - 8);
    var top = box.bottom + 4;
    if (top + height > window.innerHeight - 8) top = Math.max(8, box.top - height - 4);
    tip.style.left = Math.max(8, left) + "px";
    tip.style.top = top + "px";
  }
  ["mouseover", "focusin"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var mark = event.target.closest && event.target.closest(".sync-mark");
      if (mark) placeTip(mark);
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.activeElement.closest(".sync-mark")) {
      document.activeElement.blur();
    }
  });

  /* A row's sync cell is one tab stop: the arrow keys, Home and End move the focus along its
     marks, and the mark left focused is the cell's tab stop next time (a roving tabindex). */
  var MOVES = { ArrowRight: 1, ArrowLeft: -1, Home: -Infinity, End: Infinity };
  document.addEventListener("keydown", function (event) {
    var mark = event.target.closest && event.target.closest(".sync-mark");
    if (!mark || !(event.key in MOVES)) return;
    var marks = Array.prototype.slice.call(mark.parentElement.querySelectorAll(".sync-mark"));
    var index = Math.max(0, Math.min(marks.length - 1, marks.indexOf(mark) + MOVES[event.key]));
    event.preventDefault();
    marks.forEach(function (each) { each.tabIndex = -1; });
    marks[index].tabIndex = 0;
    marks[index].focus();
  });

  /* An inline's "Add another" button: focus moves into the new row's first field, so that a
     keyboard user types on where the row appeared (unfold announces the row it added with a
     "formset:added" event on the row's fields). */
  document.addEventListener("formset:added", function (event) {
    var row = event.target.closest ? event.target.closest(".form-group") || event.target : event.target;
    var field = row.querySelector(
      "input:not([type=hidden]):not([disabled]):not([type=checkbox]), select:not([disabled]), textarea:not([disabled])"
    );
    if (field) field.focus();
  });
})();
