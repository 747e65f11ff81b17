"""Reading a posted form with a size bound: a login or an action form is a few hundred bytes."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

MAX_FORM_BYTES = 16 * 1024


async def read_form(request: Request) -> dict[str, str]:
    size = request.headers.get("content-length", "")
    if not size.isdigit() or int(size) > MAX_FORM_BYTES:
        raise HTTPException(413, f"a form here is at most {MAX_FORM_BYTES} bytes")
    form = await request.form(max_files=0, max_fields=20)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    await form.close()
    return fields
