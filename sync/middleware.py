"""Makes the signed-in user known to the save signals, so the attempt log says who saved."""

from contextvars import ContextVar

current_user_id: ContextVar[int | None] = ContextVar("current_user_id", default=None)


def current_user_middleware(get_response):
    def middleware(request):
        user = getattr(request, "user", None)
        token = current_user_id.set(user.pk if user is not None and user.is_authenticated else None)
        try:
            return get_response(request)
        finally:
            current_user_id.reset(token)

    return middleware
