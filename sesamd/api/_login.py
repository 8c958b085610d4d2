"""``POST /jwt``: a user's email and password for a token (the guide's ``sesam login``)."""

from __future__ import annotations

import trio
from quart import Response, request

from .._auth import Unauthenticated
from ._context import api
from ._errors import ApiError
from ._routes import PUBLIC, Resource

resource = Resource("login")

LOGIN_TOKEN_DAYS = 7.0


@resource.route("/jwt", "POST", permission=PUBLIC, body="application/x-www-form-urlencoded",
                produces="text/plain",
                summary="Log in with form fields email and password; answers a token as plain text")
async def login() -> Response:
    form = await request.form
    email, password = form.get("email"), form.get("password")
    if not email or password is None:
        raise ApiError(400, "POST /jwt needs the form fields 'email' and 'password'")
    context = api()
    keys = (f"email:{email.lower()}", f"address:{request.remote_addr}")
    delay = max(context.throttle.delay(key, trio.current_time()) for key in keys)
    if delay:
        await trio.sleep(delay)  # repeated failures are answered ever more slowly
    role = await trio.to_thread.run_sync(context.users.check, email, password)
    if role is None:
        for key in keys:
            context.throttle.failed(key, trio.current_time())
        raise Unauthenticated("wrong email or password")
    for key in keys:
        context.throttle.succeeded(key)
    token = context.auth.mint(role, subject=email.lower(), expires_days=LOGIN_TOKEN_DAYS)
    return Response(token, content_type="text/plain")
