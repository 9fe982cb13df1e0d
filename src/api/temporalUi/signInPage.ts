/** The one page the gateway serves itself: an operator's API key, once per browser session. */
export function signInPage(opts: { next: string; failed: boolean }): string {
  const next = escapeHtml(opts.next);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pveflow — Temporal UI sign-in</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 12vh auto; padding: 0 1rem; color: #1f2933; }
  h1 { font-size: 1.3rem; }
  input[type=password] { width: 100%; padding: .5rem; font: inherit; box-sizing: border-box; }
  button { margin-top: .8rem; padding: .5rem 1.2rem; font: inherit; }
  .error { color: #b42318; }
  .hint { color: #52606d; font-size: .9rem; }
</style>
</head>
<body>
<h1>Temporal UI for pveflow operators</h1>
<p class="hint">Workflow payloads are encrypted. Sign in with a pveflow <strong>operator</strong> API key: this browser
then reads them decrypted until the session ends (8 hours). The key is not stored; the session is an HttpOnly cookie.</p>
${opts.failed ? '<p class="error" role="alert">That is not an operator key of this pveflow.</p>' : ''}
<form method="post" action="/pveflow/sign-in">
  <label for="key">Operator API key</label>
  <input id="key" name="key" type="password" autocomplete="off" required autofocus>
  <input type="hidden" name="next" value="${next}">
  <button type="submit">Sign in</button>
</form>
</body>
</html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
