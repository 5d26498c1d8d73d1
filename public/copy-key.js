// Copies the newly created API key to the clipboard (the page shows it only once).
document.addEventListener('DOMContentLoaded', function () {
  var button = document.getElementById('copy-api-key');
  if (!button) return;
  button.addEventListener('click', function () {
    var input = document.getElementById(button.getAttribute('data-copy'));
    input.select();
    var done = function () { button.textContent = 'Copied'; };
    if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand('copy'); done(); });
    else { document.execCommand('copy'); done(); }
  });
});
