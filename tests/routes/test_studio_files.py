"""The Studio's files and the home page are served without the key; nothing else is."""

import pytest

KEY = "studio-files-key-0123456789"


@pytest.fixture
def guarded(make_client):
    return make_client(api_key=KEY)


def test_home_and_studio_files_are_open_and_link_each_other(guarded):
    home = guarded.get("/")
    assert home.status_code == 200 and 'href="studio/"' in home.text
    page = guarded.get("/studio/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/app.js">' in page.text
    script = guarded.get("/studio/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert guarded.get("/static/vendor/uplot/dist/uPlot.esm.js").status_code == 200
    assert guarded.get("/studio", follow_redirects=False).status_code in (301, 307)


def test_the_open_studio_prefix_reaches_no_route(guarded):
    assert guarded.get("/listModels").status_code == 401
    for path in ("/studio/../listModels", "/studio/%2e%2e/listModels", "/studio/nothing.js"):
        r = guarded.get(path)
        assert r.status_code in (401, 404), path
        assert "data" not in r.text, path
