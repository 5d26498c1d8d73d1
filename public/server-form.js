// The SMTP server form, enhanced (the form works without this file: the server does the same after a post).
// A provider fills its protocol, host, port and TLS at once; only the fields the authentication method needs
// are shown; Test connection and Send test email post the form's values and show the result next to them.
/* global fetch, URLSearchParams, FormData, HTMLFormElement */
(function () {
  'use strict';
  var form = document.getElementById('server-form');
  // A read-only server has no editable form: its test buttons live in a form of their own.
  var testForm = document.getElementById('test-form') || form;
  if (!form && !testForm) return;

  var provider = document.getElementById('serviceProvider');
  if (provider) {
    provider.addEventListener('change', function () {
      var option = provider.options[provider.selectedIndex];
      if (!option || !option.dataset.host) return;
      document.getElementById('protocol').value = option.dataset.protocol;
      document.getElementById('host').value = option.dataset.host;
      document.getElementById('port').value = option.dataset.port;
      document.getElementById('tls').checked = option.dataset.tls === 'true';
      showNeededFields();
    });
  }

  // Each field group lists the authentication methods (data-auth) and protocols (data-protocol) that need it.
  var authMethod = document.getElementById('authMethod');
  var protocol = document.getElementById('protocol');
  function allows(group, name, value) {
    var list = group.getAttribute('data-' + name);
    return list === null || !value || list.split(' ').indexOf(value) !== -1;
  }
  function showNeededFields() {
    var groups = document.querySelectorAll('#server-form [data-auth], #server-form [data-protocol]');
    for (var i = 0; i < groups.length; i++) {
      groups[i].hidden = !(
        allows(groups[i], 'auth', authMethod && authMethod.value) &&
        allows(groups[i], 'protocol', protocol && protocol.value)
      );
    }
  }
  if (authMethod) authMethod.addEventListener('change', showNeededFields);
  if (protocol) protocol.addEventListener('change', showNeededFields);

  var result = document.getElementById('test-result');
  if (!testForm) return;
  testForm.addEventListener('submit', function (event) {
    var button = event.submitter;
    var action = button && button.getAttribute('formaction');
    if (!action || !result || !window.fetch) return;
    event.preventDefault();
    var buttons = testForm.querySelectorAll('button[formaction]');
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    result.textContent = result.dataset.running || '…';
    fetch(action, {
      method: 'POST',
      headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(new FormData(testForm)),
      credentials: 'same-origin',
    })
      .then(function (response) {
        return response.json().then(function (data) {
          if (typeof data.html !== 'string') throw new Error('unexpected answer');
          // Rendered and escaped by the server (views/partials/smtp-test-result.eta).
          result.innerHTML = data.html;
        });
      })
      .catch(function () {
        // Without a usable answer, fall back to the plain form post (post/redirect/get).
        testForm.setAttribute('action', action);
        HTMLFormElement.prototype.submit.call(testForm);
      })
      .finally(function () {
        for (var i = 0; i < buttons.length; i++) buttons[i].disabled = false;
      });
  });
})();
