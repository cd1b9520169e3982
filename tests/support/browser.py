"""A browser without JavaScript, for sign-in flows in tests: keeps cookies, follows redirects one hop at a time
(so a redirect to an OAuth client's callback is caught, not fetched), reads HTML forms and submits them.

    browser = FormBrowser(stop_at="http://127.0.0.1:9/callback")
    page = await browser.open(authorize_url)                  # → the sign-in page
    page = await browser.submit(page.form(), {"username": "alice", "password": "…"})
    page = await browser.submit(page.form(), button="approve")
    code = page.callback_params["code"]                        # the redirect to the client, not followed

It knows nothing of Portico's markup beyond standard HTML forms (input, button, select, textarea).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2

MAX_HOPS = 20


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # hidden and pre-filled inputs
    inputs: list[str] = field(default_factory=list)  # every named input, in order
    buttons: list[tuple[str, str]] = field(default_factory=list)  # named submit buttons: (name, value)


@dataclass
class Page:
    url: str
    status: int
    text: str
    forms: list[Form]
    callback: str | None = None  # set when the flow redirected to the `stop_at` URL
    links: list[tuple[str, str]] = field(default_factory=list)  # (absolute href, text) of every <a href>

    def link(self, text: str) -> str:
        """The href of the first link whose text contains `text`."""
        for href, label in self.links:
            if text in label:
                return href
        raise AssertionError(f"no link {text!r} on {self.url}: {self.links}")

    def form(self, containing: str | None = None) -> Form:
        """The first form (or the first with an input or button named `containing`)."""
        for form in self.forms:
            if containing is None or containing in form.inputs or any(containing in b for b in form.buttons):
                return form
        raise AssertionError(f"no form with {containing!r} on {self.url} ({self.status}):\n{self.text[:2000]}")

    @property
    def callback_params(self) -> dict[str, str]:
        assert self.callback is not None, f"the flow did not reach the callback; at {self.url}:\n{self.text[:2000]}"
        return {k: v[0] for k, v in parse_qs(urlsplit(self.callback).query).items()}


class _Forms(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []
        self._link: int | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append((urljoin(self.base, a["href"]), ""))
            self._link = len(self.links) - 1
            return
        if tag == "form":
            action = urljoin(self.base, a.get("action") or self.base)
            self.forms.append(Form(action, (a.get("method") or "get").upper()))
            return
        if not self.forms or "name" not in a:
            return
        form, name = self.forms[-1], a["name"]
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "submit":
                form.buttons.append((name, a.get("value", "")))
            elif kind in ("checkbox", "radio"):
                form.inputs.append(name)
                if "checked" in a:
                    form.fields[name] = a.get("value", "on")
            else:
                form.inputs.append(name)
                form.fields[name] = a.get("value", "")
        elif tag == "button" and a.get("type", "submit").lower() == "submit":
            form.buttons.append((name, a.get("value", "")))
        elif tag == "select":
            form.inputs.append(name)
            self._select = name
        elif tag == "option" and self._select is not None and ("selected" in a or self._select not in form.fields):
            form.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            form.inputs.append(name)
            form.fields[name] = ""
            self._textarea = name

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._link = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._link is not None:
            href, text = self.links[self._link]
            self.links[self._link] = (href, text + data)
        if self._textarea is not None and self.forms:
            self.forms[-1].fields[self._textarea] += data


class FormBrowser:
    """Cookies, one-hop redirects, forms. `stop_at`: URL prefixes never fetched (OAuth clients' callbacks)."""

    def __init__(
        self, stop_at: str | tuple[str, ...], *, headers: dict[str, str] | None = None, verify: Any = True
    ) -> None:
        self.stop_at = stop_at
        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=30, headers=headers or {}, verify=verify)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> FormBrowser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self, url: str) -> Page:
        return await self._follow(await self.http.get(url))

    async def submit(self, form: Form, values: dict[str, str] | None = None, *, button: str | None = None) -> Page:
        """Submit `form` with `values` filled in, pressing the named button whose name or value is `button`."""
        data = {**form.fields, **(values or {})}
        if button is not None:
            pressed = next((b for b in form.buttons if button in b), None)
            if pressed is None:
                raise AssertionError(f"no button {button!r} in the form (buttons: {form.buttons})")
            data[pressed[0]] = pressed[1]
        if form.method == "POST":
            response = await self.http.post(form.action, data=data)
        else:
            response = await self.http.get(form.action, params=data)
        return await self._follow(response)

    async def _follow(self, response: httpx2.Response) -> Page:
        for _ in range(MAX_HOPS):
            if response.status_code not in (301, 302, 303, 307, 308):
                break
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(self.stop_at):
                return Page(str(response.url), response.status_code, response.text, [], callback=target)
            response = await self.http.get(target)
        else:
            raise AssertionError("too many redirects")
        parser = _Forms(str(response.url))
        parser.feed(response.text)
        return Page(str(response.url), response.status_code, response.text, parser.forms, links=parser.links)
