// Submits the "Continue to the provider" form at once; without JavaScript the user presses the button.
document.getElementById('oauth-redirect')?.submit();
