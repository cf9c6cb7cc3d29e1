"""SPEC §9: the fake server is realistic, deterministic, validates like the API and can fail on demand."""

from __future__ import annotations

import base64
import io
import subprocess
import sys

import httpx
import pytest
from PIL import Image

from pytest_imagegen.fakeserver import FakeImagesServer

BODY = {
    "model": "gpt-image-2",
    "prompt": "A lighthouse at dusk",
    "size": "1024x1024",
    "quality": "low",
}


def post(
    server: FakeImagesServer, body: dict[str, object], key: str | None = "k"
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + "/images/generations", json=body, headers=headers, timeout=30)


def image_of(response: httpx.Response, index: int = 0) -> bytes:
    return base64.b64decode(response.json()["data"][index]["b64_json"])


def test_photo_like_png_of_realistic_size(fake_server: FakeImagesServer) -> None:
    response = post(fake_server, BODY)
    assert response.status_code == 200
    data = image_of(response)
    assert 1_000_000 <= len(data) <= 3_000_000  # a real 1024x1024 PNG, not a flat colour
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (1024, 1024)
    colours = img.convert("RGB").resize((64, 64)).getcolors(64 * 64)
    assert colours is not None and len(colours) > 1000
    payload = response.json()
    assert payload["size"] == "1024x1024" and payload["quality"] == "low"
    assert payload["output_format"] == "png"
    assert payload["usage"]["output_tokens"] > 0


def test_deterministic_per_prompt_size_quality_seed(fake_server: FakeImagesServer) -> None:
    small = {**BODY, "size": "256x256"}
    a = image_of(post(fake_server, small))
    assert image_of(post(fake_server, small)) == a
    assert image_of(post(fake_server, {**small, "prompt": "A lighthouse at dawn"})) != a
    assert image_of(post(fake_server, {**small, "seed": 7})) != a
    fake_server.seed = 3  # "model update": same request, new picture
    assert image_of(post(fake_server, small)) != a
    with FakeImagesServer() as other:  # another process or run: same picture
        assert image_of(post(other, small)) == a


def test_n_images_differ_and_formats(fake_server: FakeImagesServer) -> None:
    response = post(fake_server, {**BODY, "size": "256x256", "n": 3, "output_format": "jpeg"})
    images = [image_of(response, i) for i in range(3)]
    assert len(set(images)) == 3
    assert all(Image.open(io.BytesIO(i)).format == "JPEG" for i in images)


@pytest.mark.parametrize(
    "body, param",
    [
        ({**BODY, "n": 11}, "n"),
        ({**BODY, "size": "1000x1000"}, "size"),
        ({**BODY, "quality": "ultra"}, "quality"),
        ({**BODY, "prompt": ""}, "prompt"),
        ({**BODY, "model": "nope"}, "model"),
        ({**BODY, "colour": "red"}, "colour"),
    ],
)
def test_validation_errors_have_the_api_shape(
    fake_server: FakeImagesServer, body: dict[str, object], param: str
) -> None:
    response = post(fake_server, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_bearer_auth_required(fake_server: FakeImagesServer) -> None:
    response = post(fake_server, BODY, key=None)
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"
    fake_server.api_key = "right"
    assert post(fake_server, BODY, key="wrong").status_code == 401
    assert post(fake_server, {**BODY, "size": "256x256"}, key="right").status_code == 200


def test_failure_injection_over_http(fake_server: FakeImagesServer) -> None:
    control = fake_server.url.removesuffix("/v1") + "/_fake"
    token = {"X-Fake-Token": fake_server.admin_token}
    httpx.post(
        control + "/inject",
        json={"failures": [{"status": 429, "retry_after": 2}, {"status": 503}]},
        headers=token,
    )
    first = post(fake_server, BODY)
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert post(fake_server, BODY).status_code == 503
    assert post(fake_server, {**BODY, "size": "256x256"}).status_code == 200
    stats = httpx.get(control + "/stats", headers=token).json()
    assert stats["requests"] == 3 and stats["pending_failures"] == 0
    httpx.post(control + "/reset", headers=token)
    assert httpx.get(control + "/stats", headers=token).json()["requests"] == 0


def test_control_endpoints_need_the_token_a_loopback_host_and_valid_input(
    fake_server: FakeImagesServer,
) -> None:
    """Issue 20, reproduction 9: the fake server kept a rerouted test's real Authorization
    header and served it unauthenticated at GET /_fake/stats."""
    control = fake_server.url.removesuffix("/v1") + "/_fake"
    token = {"X-Fake-Token": fake_server.admin_token}
    secret = "sk-real-key-of-a-test-0123456789"
    post(fake_server, {**BODY, "size": "256x256"}, key=secret)
    assert httpx.get(control + "/stats").status_code == 401  # no token
    assert httpx.get(control + "/stats", headers={"X-Fake-Token": "guess"}).status_code == 401
    foreign = httpx.get(control + "/stats", headers={**token, "Host": "evil.example:80"})
    assert foreign.status_code == 403
    assert httpx.post(control + "/reset", headers={"Host": "evil.example"}).status_code == 403
    stats = httpx.get(control + "/stats", headers=token)
    assert stats.status_code == 200 and secret not in stats.text
    assert secret not in repr(fake_server.stats())
    for bad in ({"latency": "slow"}, {"latency": -1}, {"max_inflight": 0}, {"nope": 1}):
        answer = httpx.post(control + "/config", json=bad, headers=token)
        assert answer.status_code == 400, bad
    assert httpx.post(control + "/config", json={"latency": 0.0}, headers=token).status_code == 200
    assert fake_server.admin_token not in repr(fake_server.log)
    # found by the attacker: bad input answered 200 or killed the handler with a traceback
    assert httpx.get(control + f"/stats?token={fake_server.admin_token}").status_code == 401
    raw = httpx.post(control + "/inject", content=b"{nope", headers=token)
    assert raw.status_code == 400
    for bad in ("abc", [1], [{"count": "x"}], [{"count": 10**12}], [{"delay": "slow"}]):
        answer = httpx.post(control + "/inject", json={"failures": bad}, headers=token)
        assert answer.status_code == 400, bad
    assert fake_server.stats()["pending_failures"] == 0


def test_dropped_connection(fake_server: FakeImagesServer) -> None:
    fake_server.inject({"drop": True})
    with pytest.raises(httpx.RemoteProtocolError):
        post(fake_server, BODY)


def test_usage_never_above_list_price(fake_server: FakeImagesServer) -> None:
    from pytest_imagegen.money.prices import PriceTable

    prices = PriceTable.load()
    for size, quality, n in [
        ("1024x1024", "low", 1),
        ("1536x1024", "high", 2),
        ("256x256", "medium", 3),
    ]:
        body = {**BODY, "size": size, "quality": quality, "n": n}
        usage = post(fake_server, body).json()["usage"]
        listed = prices.list_cost("gpt-image-2", size, quality, n, BODY["prompt"]).total
        assert 0 < prices.actual_cost("gpt-image-2", usage, listed) <= listed


def test_cli_listens_on_loopback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_imagegen.fakeserver", "--port", "0", "--latency", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake images server listening on http://127.0.0.1:")
        url = line.split()[5]
        response = httpx.post(
            url + "/images/generations",
            json={**BODY, "size": "256x256"},
            headers={"Authorization": "Bearer k"},
            timeout=30,
        )
        assert response.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
