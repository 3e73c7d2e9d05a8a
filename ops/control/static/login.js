"use strict";
// Sign in: trade the operator token for a session cookie, then open the dashboard.
document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const token = document.getElementById("token").value.trim();
  try {
    const resp = await fetch("/api/login", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Requested-With": "citycard"},
      body: JSON.stringify({token}),
    });
    if (resp.ok) {
      window.location.assign("/");
      return;
    }
    const body = await resp.json().catch(() => ({}));
    error.textContent = body.message || `sign-in failed (${resp.status})`;
  } catch (e) {
    error.textContent = `the control room cannot be reached: ${e}`;
  }
});
