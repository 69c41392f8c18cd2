"""The Cloud API's calls beside sends, on the same blueprint as them (saas.api.cloud registers these views).

  POST   /v{N}/{phone_number_id}/media                       upload (multipart: file, type, messaging_product)
  GET    /v{N}/{media_id}[?phone_number_id=]                 the media's metadata; ``url`` points at us
  GET    /v{N}/media/{media_id}/content                      the media's bytes, streamed from WhatsApp
  DELETE /v{N}/{media_id}[?phone_number_id=]                 delete the media
  GET    /v{N}/{phone_number_id}[?fields=]                   the number's info
  GET    /v{N}/{phone_number_id}/whatsapp_business_profile   the number's business profile
  POST   /v{N}/{phone_number_id}/whatsapp_business_profile   change it (live numbers)

``GET /v{N}/{id}`` is both Graph's number-info and media-info call: an id that
is one of the tenant's numbers reads the number, any other is looked up among
the tenant's media. Anything the tenant does not own answers as Graph answers
an unknown object.
"""
from __future__ import annotations

import re

from flask import Response, current_app, jsonify, request, stream_with_context

from saas.api import schemas
from saas.api.requests import current_rights, current_tenant, json_object, load
from saas.errors import InvalidRequest, NotFound, PayloadTooLarge
from saas.messaging.numbers import media, profile as number_profile
from saas.messaging.numbers.phone_numbers import sending_number
from saas.request_size import media_upload_limit
from saas.urls import public_url


# A MIME type as WhatsApp names them (image/jpeg, application/vnd.openxmlformats-...), bounded.
MIME_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
CONTENT_TYPE = re.compile(r"^[\x20-\x7e]{1,255}$")
FILENAME_NOISE = re.compile(r'[\x00-\x1f\x7f"\\/]')
CHUNK = 64 * 1024

profile_body = schemas.BusinessProfileUpdate()


def _graph():
    return current_app.extensions["graph"]


def _is_number(tenant, object_id) -> bool:
    try:
        sending_number(tenant, object_id)
    except NotFound:
        return False
    return True


def upload_form() -> media.Upload:
    """The multipart form of an upload, checked as Graph checks it: InvalidRequest says what is wrong."""
    request.max_content_length = media_upload_limit(current_app.config)
    if request.mimetype != "multipart/form-data":
        raise InvalidRequest("Send the upload as multipart/form-data with the fields file, type and "
                             "messaging_product.", details={"file": ["The parameter file is required."]})
    form, files = request.form, request.files
    problems = {}
    uploaded = files.getlist("file")
    if len(uploaded) != 1:
        problems["file"] = ["The parameter file is required, once." if uploaded else "The parameter file is required."]
    # Graph reads its parameters from the query string too (whatsapp-api-js sends messaging_product
    # there), and without ``type`` the file part's own Content-Type (whatsapp-api-js sends no ``type``).
    if (form.get("messaging_product") or request.args.get("messaging_product")) != "whatsapp":
        problems["messaging_product"] = ["The parameter messaging_product is required and must be 'whatsapp'."]
    mime_type = form.get("type") or request.args.get("type") or (uploaded[0].mimetype if len(uploaded) == 1 else "")
    if not mime_type:
        problems["type"] = ["The parameter type is required: the file's MIME type, e.g. image/jpeg."]
    elif not MIME_TYPE.match(mime_type):
        problems["type"] = ["Must be a MIME type such as image/jpeg or application/pdf."]
    if problems:
        raise InvalidRequest("Some fields are missing or invalid.", details=problems)
    file = uploaded[0]
    stream = file.stream
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    if size == 0:
        raise InvalidRequest("The file is empty.", details={"file": ["The file is empty."]})
    if size > current_app.config["MEDIA_MAX_BYTES"]:
        raise PayloadTooLarge(f"The file is larger than this server's {current_app.config['MEDIA_MAX_BYTES']} "
                              "bytes for media.")
    filename = FILENAME_NOISE.sub("", file.filename or "")[:200].strip() or "file"
    return media.Upload(stream=stream, size=size, filename=filename, mime_type=mime_type.lower())


def upload_media(version, phone_number_id):
    tenant = current_tenant()
    number = media.upload_number(tenant, current_rights(), phone_number_id)
    return jsonify(media.upload(_graph(), tenant, number, upload_form()))


def get_object(version, object_id):
    tenant = current_tenant()
    if _is_number(tenant, object_id):
        fields = number_profile.fields_param(request.args.get("fields"))
        return jsonify(number_profile.number_info(_graph(), tenant, object_id, fields))
    phone_number_id = request.args.get("phone_number_id") or None
    ref = media.owned(tenant, object_id, phone_number_id=phone_number_id)
    answer = dict(media.info(_graph(), ref, phone_number_id=phone_number_id))
    if "url" in answer:
        # Meta's URL needs the number's token; ours takes the tenant's API key.
        answer["url"] = public_url("cloud.media_content", version=version, media_id=ref.media_id)
    return jsonify(answer)


def delete_object(version, object_id):
    tenant = current_tenant()
    phone_number_id = request.args.get("phone_number_id") or None
    ref = media.owned(tenant, object_id, phone_number_id=phone_number_id, method="delete")
    return jsonify(media.delete(_graph(), tenant, ref, phone_number_id=phone_number_id))


def media_content(version, media_id):
    ref = media.owned(current_tenant(), media_id)
    upstream = media.open_content(_graph(), ref)

    kind = upstream.headers.get("Content-Type") or ""
    headers = {"Content-Type": kind if CONTENT_TYPE.match(kind) else "application/octet-stream",
               "Content-Disposition": "attachment", "Cache-Control": "private, no-store",
               "X-Content-Type-Options": "nosniff"}
    length = upstream.headers.get("Content-Length")
    if length and not upstream.headers.get("Content-Encoding"):
        headers["Content-Length"] = length
    body = media.capped_chunks(upstream, current_app.config["MEDIA_MAX_BYTES"], ref.media_id, CHUNK)
    response = Response(stream_with_context(body), headers=headers, direct_passthrough=True)
    response.call_on_close(upstream.close)
    return response


def business_profile(version, phone_number_id):
    tenant = current_tenant()
    if request.method == "POST":
        changes = load(profile_body, json_object())
        changes.pop("messaging_product", None)
        return jsonify(number_profile.update_business_profile(_graph(), tenant, phone_number_id, changes))
    fields = number_profile.fields_param(request.args.get("fields"))
    return jsonify(number_profile.business_profile(_graph(), tenant, phone_number_id, fields))


def register(bp) -> None:
    """Add these views to the Cloud API blueprint (its key check and error shape apply)."""
    bp.add_url_rule("/<graph_version:version>/<phone_number_id>/media", "upload_media", upload_media,
                    methods=["POST"])
    bp.add_url_rule("/<graph_version:version>/media/<media_id>/content", "media_content", media_content,
                    methods=["GET"])
    bp.add_url_rule("/<graph_version:version>/<object_id>", "get_object", get_object, methods=["GET"])
    bp.add_url_rule("/<graph_version:version>/<object_id>", "delete_object", delete_object, methods=["DELETE"])
    bp.add_url_rule("/<graph_version:version>/<phone_number_id>/whatsapp_business_profile", "business_profile",
                    business_profile, methods=["GET", "POST"])
