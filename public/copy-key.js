// Copy buttons of the API key page: a new key (shown only once) and the SMTP settings an app needs.
document.addEventListener('DOMContentLoaded', function () {
  var buttons = document.querySelectorAll('button[data-copy]');
  Array.prototype.forEach.call(buttons, function (button) {
    button.addEventListener('click', function () {
      var input = document.getElementById(button.getAttribute('data-copy'));
      if (!input) return;
      input.select();
      var done = function () { button.textContent = button.getAttribute('data-copied') || button.textContent; };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand('copy'); done(); });
      else { document.execCommand('copy'); done(); }
    });
  });
});
