"""The `/docs` page works without internet: everything it loads comes from this server."""

from __future__ import annotations

import re

from tests.support.client import Api

_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


async def test_docs_page_loads_only_local_assets_and_they_are_served(api: Api) -> None:
    page = await api.http.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    refs = {a or b for a, b in _REFERENCES.findall(page.text)}
    # the page, its script and style, its icon, and the API description it renders
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json"} <= refs, refs
    remote = sorted(ref for ref in refs if re.match(r"^(?:[a-z]+:)?//", ref))
    assert remote == [], f"/docs loads from elsewhere: {remote}"
    for ref in refs:
        served = await api.http.get(ref)
        assert served.status_code == 200, ref
        assert len(served.content) > 100, ref
    script = await api.http.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"] and b"SwaggerUIBundle" in script.content
    assert (await api.http.get("/openapi.json")).json()["info"]["title"] == "TableForge"


async def test_docs_assets_serve_only_what_the_page_needs(api: Api) -> None:
    # the package also carries Swagger Editor; it is not part of this server
    assert (await api.http.get("/docs/assets/swagger-editor-bundle.js")).status_code == 404
    assert (await api.http.get("/docs/assets/../templates/doc.html")).status_code == 404
