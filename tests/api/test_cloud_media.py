"""Media on the Cloud-API-compatible paths: upload, read, download and delete, against the loopback Graph API."""
from __future__ import annotations

import http.client
import io
import json

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Media
from tests.factories import sender
from tests.messaging.live import live_number

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def acme(app, client, graph):
    """A Starter tenant (its plan has media) with a live number; (sender, phone_number_id, number pk, token)."""
    tenant = sender(client, "starter")
    phone_number_id, pk, _, token = live_number(app, graph, tenant.tenant_id)
    return tenant, phone_number_id, pk, token


def upload(tenant, phone_number_id, data=PNG, mime="image/png", *, fields=None, filename="photo.png"):
    form = {"messaging_product": "whatsapp", "type": mime, "file": (io.BytesIO(data), filename, mime)}
    if fields is not None:
        form = {**form, **fields}
        form = {k: v for k, v in form.items() if v is not None}
    return tenant.client.post(f"/v23.0/{phone_number_id}/media", data=form, headers=tenant.headers,
                              content_type="multipart/form-data")


def media_rows(app, **where) -> list[Media]:
    with app.app_context():
        rows = list(db.session.scalars(select(Media).filter_by(**where).order_by(Media.media_id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def uploaded(app, acme) -> str:
    tenant, phone_number_id, _, _ = acme
    response = upload(tenant, phone_number_id)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["id"]


def graph_error(response, status, code):
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


# -- upload ------------------------------------------------------------------------------------

def test_an_upload_goes_to_graph_with_the_numbers_token_and_the_id_becomes_the_tenants(app, graph, acme):
    tenant, phone_number_id, pk, token = acme
    response = upload(tenant, phone_number_id, filename="shop front.png")
    assert response.status_code == 200, response.get_json()
    media_id = response.get_json()["id"]
    assert response.get_json() == {"id": media_id}
    [call] = graph.requests("POST", "/media")
    assert call.path == f"/v23.0/{phone_number_id}/media"
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert call.body["file"] == PNG and call.body["type"] == "image/png"
    assert call.body["messaging_product"] == "whatsapp"
    assert call.body["_filename"] == "shop front.png" and call.body["_file_type"] == "image/png"
    [row] = media_rows(app, media_id=media_id)
    assert (row.tenant_id, row.phone_number_id, row.origin, row.mime_type, row.deleted_at) == (
        tenant.tenant_id, pk, "upload", "image/png", None)


def test_an_upload_larger_than_max_request_bytes_but_within_media_max_bytes_goes_through(app, graph, acme):
    tenant, phone_number_id, _, _ = acme
    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 50_000)
    response = upload(tenant, phone_number_id, big, "application/pdf", filename="big.pdf")
    assert response.status_code == 200, response.get_json()
    assert graph.requests("POST", "/media")[0].body["file"] == big


def test_a_file_past_media_max_bytes_is_413_and_nothing_goes_upstream(app, graph, acme):
    tenant, phone_number_id, _, _ = acme
    saved = app.config["MEDIA_MAX_BYTES"]
    app.config["MEDIA_MAX_BYTES"] = 1000
    try:
        just_over = upload(tenant, phone_number_id, b"x" * 1001, "text/plain")
        far_over = upload(tenant, phone_number_id, b"x" * 200_000, "text/plain")
        within = upload(tenant, phone_number_id, b"x" * 1000, "text/plain")
    finally:
        app.config["MEDIA_MAX_BYTES"] = saved
    for response in (just_over, far_over):
        error = graph_error(response, 413, 4130)
        assert error["code"] == 4130 and error["reason"] == "payload_too_large"
    assert within.status_code == 200
    assert len(graph.requests("POST", "/media")) == 1
    assert len(media_rows(app)) == 1


@pytest.mark.parametrize("fields, field", [
    ({"file": None}, "file"),
    ({"type": "png"}, "type"),
    ({"type": "image/png\x00"}, "type"),
    ({"type": "image/" + "p" * 300}, "type"),
    ({"messaging_product": None}, "messaging_product"),
    ({"messaging_product": "sms"}, "messaging_product"),
])
def test_a_bad_upload_form_is_a_graph_shaped_400_and_nothing_goes_upstream(app, graph, acme, fields, field):
    tenant, phone_number_id, _, _ = acme
    error = graph_error(upload(tenant, phone_number_id, fields=fields), 400, 100)
    assert error["code"] == 100 and error["reason"] == "invalid_request"
    assert field in error["details"]
    assert graph.requests("POST", "/media") == [] and media_rows(app) == []


def test_without_type_the_file_parts_content_type_is_the_type_and_messaging_product_may_be_in_the_query(
        app, graph, acme):
    """As whatsapp-api-js uploads: ?messaging_product=whatsapp, and a form holding only the file."""
    tenant, phone_number_id, _, _ = acme
    response = tenant.client.post(f"/v23.0/{phone_number_id}/media?messaging_product=whatsapp",
                                  data={"file": (io.BytesIO(PNG), "blob", "image/png")}, headers=tenant.headers,
                                  content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    [call] = graph.requests("POST", "/media")
    assert (call.body["type"], call.body["messaging_product"], call.body["file"]) == ("image/png", "whatsapp", PNG)
    assert [row.mime_type for row in media_rows(app)] == ["image/png"]


def test_an_upload_with_no_type_anywhere_is_refused(app, graph, acme):
    tenant, phone_number_id, _, _ = acme
    boundary = "relay-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo\"\r\n\r\n").encode()
    body += PNG + f"\r\n--{boundary}--\r\n".encode()
    response = tenant.client.post(f"/v23.0/{phone_number_id}/media", data=body, headers=tenant.headers,
                                  content_type=f"multipart/form-data; boundary={boundary}")
    assert "type" in graph_error(response, 400, 100)["details"]
    assert graph.requests("POST", "/media") == [] and media_rows(app) == []


def test_an_empty_file_or_a_json_body_is_refused(app, graph, acme):
    tenant, phone_number_id, _, _ = acme
    assert graph_error(upload(tenant, phone_number_id, b""), 400, 100)["details"] == {"file": ["The file is empty."]}
    as_json = tenant.client.post(f"/v23.0/{phone_number_id}/media", json={"messaging_product": "whatsapp"},
                                 headers=tenant.headers)
    assert "multipart/form-data" in graph_error(as_json, 400, 100)["message"]
    assert graph.requests("POST", "/media") == []


def test_a_plan_without_media_cannot_upload(app, client, graph):
    tenant = sender(client, "free")
    phone_number_id, _, _, _ = live_number(app, graph, tenant.tenant_id)
    error = graph_error(upload(tenant, phone_number_id), 403, 4030)
    assert error["reason"] == "feature_not_in_plan" and error["details"]["feature"] == "media"
    assert graph.requests("POST", "/media") == []


def test_a_sandbox_number_cannot_upload_and_nothing_is_stored(app, graph, acme):
    tenant = acme[0]
    error = graph_error(upload(tenant, tenant.number), 400, 4001)
    assert error["reason"] == "live_number_required" and "live number" in error["message"]
    assert graph.requests("POST", "/media") == [] and media_rows(app) == []


def test_graphs_upload_refusal_reaches_the_tenant_with_metas_details(app, graph, acme):
    tenant, phone_number_id, _, _ = acme
    graph.fail("POST", "/media", code=131053, subcode=2494100)
    error = graph_error(upload(tenant, phone_number_id), 400, 131053)
    assert error["code"] == 131053 and error["error_subcode"] == 2494100
    assert error["error_data"]["details"] == "(#131053) Media upload error"
    assert error["fbtrace_id"].startswith("A") and error["fbtrace_id"] == error["details"]["fbtrace_id"]
    assert media_rows(app) == []


@pytest.mark.parametrize("break_it", ["503", "drop", "throttle"])
def test_an_upload_is_never_retried(app, graph, acme, break_it):
    tenant, phone_number_id, _, _ = acme
    if break_it == "503":
        graph.fail("POST", "/media", status=503, times=3)
    elif break_it == "drop":
        graph.drop("POST", "/media", times=3)
    else:
        graph.throttle("POST", "/media", retry_after=0.1, times=3)
    response = upload(tenant, phone_number_id)
    assert response.status_code == (429 if break_it == "throttle" else 502), response.get_json()
    if break_it == "throttle":  # Meta's "0.1" relayed as whole seconds, the form clients and our limiter read
        assert response.headers["Retry-After"] == "1"
    assert len(graph.requests("POST", "/media")) == 1
    assert media_rows(app) == []


# -- read, download, delete ----------------------------------------------------------------------

def test_reading_an_uploaded_media_relays_meta_with_a_url_of_ours_that_streams_the_bytes(app, graph, acme):
    tenant, phone_number_id, _, token = acme
    media_id = uploaded(app, acme)
    response = tenant.get(f"/v23.0/{media_id}?phone_number_id={phone_number_id}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == media_id and body["mime_type"] == "image/png" and body["file_size"] == len(PNG)
    assert body["url"] == f"http://localhost/v23.0/media/{media_id}/content"
    [call] = graph.requests("GET", f"/{media_id}")
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert call.query == {"phone_number_id": [phone_number_id]}

    content = tenant.get(f"/v23.0/media/{media_id}/content")
    assert content.status_code == 200
    assert content.data == PNG and content.headers["Content-Type"] == "image/png"
    assert content.headers["Content-Length"] == str(len(PNG))
    assert graph.requests("GET", f"/media/{media_id}")[0].headers["Authorization"] == f"Bearer {token}"


def test_a_download_larger_than_media_max_bytes_is_refused(app, graph, acme):
    tenant = acme[0]
    media_id = uploaded(app, acme)
    saved = app.config["MEDIA_MAX_BYTES"]
    app.config["MEDIA_MAX_BYTES"] = 100
    try:
        response = tenant.get(f"/v23.0/media/{media_id}/content")
    finally:
        app.config["MEDIA_MAX_BYTES"] = saved
    error = graph_error(response, 502, 131000)
    assert "larger than" in error["message"]


def test_deleting_forwards_and_the_id_is_then_unknown(app, graph, acme):
    tenant, _, _, token = acme
    media_id = uploaded(app, acme)
    response = tenant.client.delete(f"/v23.0/{media_id}", headers=tenant.headers)
    assert response.status_code == 200 and response.get_json() == {"success": True}
    [call] = graph.requests("DELETE", f"/{media_id}")
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert media_rows(app, media_id=media_id)[0].deleted_at is not None
    calls = len(graph.calls)
    for again in (tenant.get(f"/v23.0/{media_id}"), tenant.client.delete(f"/v23.0/{media_id}", headers=tenant.headers)):
        error = graph_error(again, 404, 100)
        assert error["error_subcode"] == 33
    assert len(graph.calls) == calls


@pytest.mark.parametrize("break_it", ["throttle", "503", "drop"])
def test_a_read_is_retried_when_graph_is_busy_or_drops_the_connection(app, graph, acme, break_it):
    tenant = acme[0]
    media_id = uploaded(app, acme)
    if break_it == "throttle":
        graph.throttle("GET", f"/{media_id}", retry_after=0.1)
    elif break_it == "503":
        graph.fail("GET", f"/{media_id}", status=503)
    else:
        graph.drop("GET", f"/{media_id}")
    response = tenant.get(f"/v23.0/{media_id}")
    assert response.status_code == 200, response.get_json()
    assert len(graph.requests("GET", f"/{media_id}")) == 2


def test_a_delete_is_retried_and_graph_busy_past_the_retries_is_relayed_with_retry_after(app, graph, acme):
    tenant = acme[0]
    media_id = uploaded(app, acme)
    graph.fail("DELETE", f"/{media_id}", status=503)
    assert tenant.client.delete(f"/v23.0/{media_id}", headers=tenant.headers).status_code == 200
    assert len(graph.requests("DELETE", f"/{media_id}")) == 2

    other = uploaded(app, acme)
    graph.throttle("GET", f"/{other}", retry_after=30)  # longer than the retry budget: not waited for
    response = tenant.get(f"/v23.0/{other}")
    error = graph_error(response, 429, 130429)
    assert response.headers["Retry-After"] == "30" and error["code"] == 130429
    assert len(graph.requests("GET", f"/{other}")) == 1


def test_graph_failing_every_retry_is_a_502(app, graph, acme):
    tenant = acme[0]
    media_id = uploaded(app, acme)
    graph.fail("GET", f"/{media_id}", status=503, times=3)
    assert graph_error(tenant.get(f"/v23.0/{media_id}"), 502, 2)["reason"] == "upstream_error"
    assert len(graph.requests("GET", f"/{media_id}")) == 3


def test_a_graph_that_does_not_answer_in_time_is_a_504(app, graph, acme):
    tenant = acme[0]
    media_id = uploaded(app, acme)
    saved = app.config["WHATSAPP_TIMEOUT_SECONDS"]
    app.config["WHATSAPP_TIMEOUT_SECONDS"] = 0.3
    graph.delay("GET", f"/{media_id}", seconds=1.0)
    try:
        response = tenant.get(f"/v23.0/{media_id}")
    finally:
        app.config["WHATSAPP_TIMEOUT_SECONDS"] = saved
    assert graph_error(response, 504, 131000)["reason"] == "upstream_timeout"


@pytest.mark.parametrize("code, status", [(100, 400), (190, 401)])
def test_graphs_refusal_of_a_read_keeps_metas_code_and_trace(app, graph, acme, code, status):
    tenant = acme[0]
    media_id = uploaded(app, acme)
    graph.fail("GET", f"/{media_id}", code=code, subcode=33 if code == 100 else None)
    error = graph_error(tenant.get(f"/v23.0/{media_id}"), status, code)
    assert error["code"] == code and error["type"] == "OAuthException"
    assert error["fbtrace_id"].startswith("A") and error["error_data"]["details"]
    assert error.get("error_subcode") == (33 if code == 100 else None)


# -- tenant isolation ------------------------------------------------------------------------------

def test_another_tenant_cannot_read_download_or_delete_a_media_id(app, client, graph, acme):
    media_id = uploaded(app, acme)
    intruder = sender(client, "starter")
    intruder_number, _, _, _ = live_number(app, graph, intruder.tenant_id)
    calls = len(graph.calls)

    def same_as_unknown(path, method="get", query=""):
        call = getattr(intruder.client, method)
        theirs, unknown = call(f"{path}{media_id}{query}", headers=intruder.headers), call(
            f"{path}999999999999999{query}", headers=intruder.headers)
        assert theirs.status_code == unknown.status_code == 404
        strip = lambda r: json.dumps({k: v for k, v in r.get_json()["error"].items() if k != "fbtrace_id"})
        assert strip(theirs) == strip(unknown).replace("999999999999999", media_id)

    same_as_unknown("/v23.0/")
    same_as_unknown("/v23.0/", query=f"?phone_number_id={intruder_number}")
    same_as_unknown("/v23.0/media/", query="/content")
    same_as_unknown("/v23.0/", "delete")
    assert len(graph.calls) == calls
    assert media_rows(app, media_id=media_id)[0].deleted_at is None
    # Nor by naming the owner's number beside it.
    owner_number = acme[1]
    error = graph_error(intruder.get(f"/v23.0/{media_id}?phone_number_id={owner_number}"), 404, 100)
    assert error["error_subcode"] == 33


@pytest.mark.parametrize("object_id", ["1" * 200, "12ab", "%00", "1%002", "-1"])
def test_malformed_and_over_long_ids_answer_as_unknown_objects(app, graph, acme, object_id):
    tenant = acme[0]
    for response in (tenant.get(f"/v23.0/{object_id}"), tenant.client.delete(f"/v23.0/{object_id}",
                                                                              headers=tenant.headers),
                     tenant.get(f"/v23.0/media/{object_id}/content")):
        error = graph_error(response, 404, 100)
        assert error["error_subcode"] == 33
    assert graph.calls == []


# -- chunked uploads (no Content-Length): counted against MEDIA_MAX_BYTES, not MAX_REQUEST_BYTES ---------

@pytest.fixture
def served(live_server) -> int:
    """The port of the app behind a real HTTP server on 127.0.0.1."""
    return int(live_server.rsplit(":", 1)[1])


def upload_chunked(port, path, data: bytes, headers: dict):
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="messaging_product"\r\n\r\nwhatsapp\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\ntext/plain\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
            f'Content-Type: text/plain\r\n\r\n').encode() + data + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", path)
    for name, value in {**headers, "Transfer-Encoding": "chunked",
                        "Content-Type": f"multipart/form-data; boundary={boundary}"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    try:
        for start in range(0, len(body), 8192):
            piece = body[start:start + 8192]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before the whole body is sent
    response = conn.getresponse()
    status, answer = response.status, json.loads(response.read())
    conn.close()
    return status, answer


def test_a_chunked_upload_is_held_to_media_max_bytes(app, graph, acme, served):
    tenant, phone_number_id, _, _ = acme
    path = f"/v23.0/{phone_number_id}/media"
    status, answer = upload_chunked(served, path, b"x" * (app.config["MAX_CONTENT_LENGTH"] + 10_000), tenant.headers)
    assert status == 200, answer
    saved = app.config["MEDIA_MAX_BYTES"]
    app.config["MEDIA_MAX_BYTES"] = 2000
    try:
        status, answer = upload_chunked(served, path, b"x" * 200_000, tenant.headers)
    finally:
        app.config["MEDIA_MAX_BYTES"] = saved
    assert status == 413 and answer["error"]["code"] == 4130
    assert len(graph.requests("POST", "/media")) == 1
