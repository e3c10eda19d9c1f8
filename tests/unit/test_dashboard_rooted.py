"""The dashboard's links under a mount point (``forecast.dashboard.rooted``)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from forecast.dashboard.rooted import RootedLinks, root_html, root_link


def test_links_on_this_site_get_the_prefix_once_and_others_none() -> None:
    root = b"/dashboard"
    assert root_link(b"/", root) == b"/dashboard/"
    assert root_link(b"/reps?period=week", root) == b"/dashboard/reps?period=week"
    assert root_link(b"/dashboard/reps", root) == b"/dashboard/reps"  # already under it
    assert root_link(b"//evil.example/x", root) == b"//evil.example/x"  # another host: untouched
    assert root_link(b"https://x/y", root) == b"https://x/y"
    html = b'<a href="/">o</a><form action="/login"></form><img src="/i.svg"><a href="https://x/">x</a>'
    assert root_html(html, root) == (
        b'<a href="/dashboard/">o</a><form action="/dashboard/login"></form>'
        b'<img src="/dashboard/i.svg"><a href="https://x/">x</a>'
    )


def _app() -> Starlette:
    def page(request: Request) -> HTMLResponse:
        return HTMLResponse('<a href="/reps">reps</a> <form action="/login"></form>')

    def away(request: Request) -> RedirectResponse:
        return RedirectResponse("/login?next=%2Freps", status_code=303)

    def text(request: Request) -> PlainTextResponse:
        return PlainTextResponse('href="/reps"')  # not HTML: left as it is

    routes = [Route("/", page), Route("/away", away), Route("/text", text)]
    return Starlette(routes=routes, middleware=[Middleware(RootedLinks)])


def test_the_middleware_roots_answers_only_under_a_mount() -> None:
    alone = TestClient(_app())
    assert alone.get("/").text == '<a href="/reps">reps</a> <form action="/login"></form>'
    mounted = TestClient(Starlette(routes=[Mount("/dashboard", app=_app())]))
    page = mounted.get("/dashboard/")
    assert page.text == '<a href="/dashboard/reps">reps</a> <form action="/dashboard/login"></form>'
    assert int(page.headers["content-length"]) == len(page.content)
    assert mounted.get("/dashboard/away", follow_redirects=False).headers["location"] == (
        "/dashboard/login?next=%2Freps"
    )
    assert mounted.get("/dashboard/text").text == 'href="/reps"'
