// Tells mailgate the browser's time zone once, so pages show times in it (they show UTC until then).
(function () {
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone || document.cookie.indexOf('mailgate_tz=' + zone) !== -1) return;
  document.cookie = 'mailgate_tz=' + zone + '; path=/; max-age=31536000; samesite=lax';
})();
