"The documentation site: built from the notebooks by docs/build.py, every page opened in headless Chromium (issue 18)."
import json, re, shutil, subprocess, sys
from pathlib import Path
from urllib.parse import unquote, urlparse
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
build = pytest.importorskip("build", reason="docs/build.py")
pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build.main(["--site", str(out)])
    return out


def dom(page: Path) -> str:
    "The page's DOM after Chromium has rendered it (scripts run)."
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "<html" in r.stdout, r.stderr[-2000:]
    return r.stdout


def expected_pages() -> dict[str, str]:
    "Site file -> the title its page must show."
    pages = {f"{nb.stem}.html": build.title(nb) for nb in build.notebooks()}
    pages.update({f"api/{m}.html": f"rlprims.{m}" for m in build.modules()})
    return pages


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian's chromium package; .ci/run installs it)")
def test_every_page_renders_with_its_title_plots_and_live_links(site):
    pages = expected_pages()
    assert len(pages) >= 40
    missing = []
    for name, title in pages.items():
        page = site / name
        assert page.exists(), name
        html = dom(page)
        h1 = [re.sub(r"<[^>]+>", "", h).replace("¶", "").strip() for h in re.findall(r"<h1[^>]*>(.*?)</h1>", html, re.S)]
        assert title in h1, (name, title, h1)
        if name in ("03_kl.html", "06_training.html"):      # their plots, saved in the notebooks, are images on the page
            assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= 1, name
        for href in re.findall(r'href="([^"]+)"', html):
            u = urlparse(href)
            if u.scheme or href.startswith(("#", "mailto:", "javascript:")): continue
            target = (page.parent / unquote(u.path)).resolve()
            if u.path and not (target.exists() or (target / "index.html").exists()): missing.append((name, href))
    assert not missing, missing[:20]


def test_api_pages_document_the_public_names(site):
    text = (site / "api" / "training.html").read_text()
    for name in ("train", "training_iteration", "collect_rollouts", "prepare_update", "update_policy", "update_reference"):
        assert f"<code>{name}</code>" in text, name
    assert "RunConfig" in (site / "api" / "core.html").read_text()
