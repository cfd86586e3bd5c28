"""Cloud Storage JSON API v1: buckets get, objects get / list / media download, uploads
(resumable, multipart, media). Served under /storage/v1/ and /upload/storage/v1/ (the
storage endpoint override is http://127.0.0.1:PORT/storage/v1/: gcloud storage appends
`b/...` to it, and derives the upload URL by inserting `upload/` (resumable: `resumable/upload/`) before `storage/v1/`).

Shapes: gcloud generated client storage_v1_messages.py: Bucket {name, iamConfiguration:
{uniformBucketLevelAccess: {enabled}, publicAccessPrevention}, versioning: {enabled}},
Object {name, bucket, generation, size, md5Hash, crc32c, contentType}, Objects {items,
prefixes}. Versioning: a write keeps the replaced version as noncurrent (Bucket.store);
objects.get takes `generation` (gcloud's `gs://B/O#N`), objects.list takes `versions=true`
(`gcloud storage objects list` asks for live and noncurrent versions). Resumable-upload protocol: Google Cloud Storage docs, "Resumable uploads"
(308 with a Range header until the last chunk; Content-Range `bytes a-b/*` or `bytes */N`).
Hashes are computed for real: gcloud storage checks downloads and uploads against them
(crc32c: Castagnoli, RFC 3720 appendix B.4; md5), base64 of the big-endian digest.
"""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import quote
from email.parser import BytesParser
from email.policy import HTTP

from .routing import ApiError, Request, Response, Router, not_found
from .state import Bucket, StoredObject, Upload, World, rfc3339

S = r"/storage/v1/b/(?P<bucket>[^/]+)"
U = r"(?:/resumable)?/upload/storage/v1/b/(?P<bucket>[^/]+)"  # apitools puts resumable uploads under /resumable/upload/

_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def bucket_json(world: World, b: Bucket) -> dict:
    return {"kind": "storage#bucket", "id": b.name, "name": b.name, "selfLink": f"https://www.googleapis.com/storage/v1/b/{b.name}",
            "projectNumber": world.number_of(b.project) or "0", "location": "US", "locationType": "multi-region",
            "storageClass": "STANDARD", "metageneration": "1", "etag": "CAE=", "timeCreated": b.created, "updated": b.created,
            "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": b.ubla}, "bucketPolicyOnly": {"enabled": b.ubla},
                                 "publicAccessPrevention": b.pap},
            "versioning": {"enabled": b.versioning}}


def object_json(b: Bucket, name: str, o: StoredObject, host: str = "127.0.0.1") -> dict:
    # mediaLink: gcloud storage downloads from it (api_lib/storage/gcs_json/client.py
    # get_download_serialization_data); Google's is https://storage.googleapis.com/download/storage/v1/...
    media = f"http://{host}/download/storage/v1/b/{b.name}/o/{quote(name, safe='')}?generation={o.generation}&alt=media"
    return {"mediaLink": media, "selfLink": f"http://{host}/storage/v1/b/{b.name}/o/{quote(name, safe='')}","kind": "storage#object", "id": f"{b.name}/{name}/{o.generation}", "name": name, "bucket": b.name,
            "generation": str(o.generation), "metageneration": "1", "contentType": o.content_type,
            "storageClass": "STANDARD", "size": str(len(o.data)),
            "md5Hash": base64.b64encode(hashlib.md5(o.data).digest()).decode(),
            "crc32c": base64.b64encode(crc32c(o.data).to_bytes(4, "big")).decode(),
            "etag": f"CI{o.generation}EAE=", "timeCreated": o.created, "updated": o.created, "timeStorageClassUpdated": o.created}


def _bucket(world: World, name: str) -> Bucket:
    b = world.buckets.get(name)
    if b is None:
        raise not_found("The specified bucket does not exist.")
    return b


def _store(world: World, b: Bucket, req: Request, name: str, data: bytes, content_type: str) -> dict:
    obj = StoredObject(bytes(data), world.next_id(), content_type or "application/octet-stream", rfc3339())
    b.store(name, obj)
    return object_json(b, name, obj, req.headers.get("host", "127.0.0.1"))


def register(router: Router, world: World) -> None:
    def get_bucket(req: Request, bucket: str):
        with world.lock:
            return bucket_json(world, _bucket(world, bucket))

    def get_object(req: Request, bucket: str, name: str):
        with world.lock:
            b = _bucket(world, bucket)
            o = b.version(name, req.query.get("generation"))
            if o is None:
                raise not_found(f"No such object: {bucket}/{name}")
            described = object_json(b, name, o, req.headers.get("host", "127.0.0.1"))
            if req.query.get("alt") == "media":
                headers = {"Content-Type": o.content_type, "x-goog-generation": str(o.generation),
                           "x-goog-hash": f"crc32c={described['crc32c']},md5={described['md5Hash']}"}
                ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", req.headers.get("range", ""))
                if ranged and o.data:
                    # A byte range answers 206 with Content-Range (RFC 9110 section 14; gcloud asks
                    # for bytes=0-(size-1) on every download).
                    first = int(ranged.group(1))
                    last = min(int(ranged.group(2) or len(o.data) - 1), len(o.data) - 1)
                    headers["Content-Range"] = f"bytes {first}-{last}/{len(o.data)}"
                    return Response(206, o.data[first:last + 1], headers)
                return Response(200, o.data, headers)
            return described

    def list_objects(req: Request, bucket: str):
        prefix, delimiter = req.query.get("prefix", ""), req.query.get("delimiter", "")
        with world.lock:
            b = _bucket(world, bucket)
            items, prefixes = [], set()
            versions = str(req.query.get("versions", "")).lower() == "true"
            listed = [(name, o) for name, o in sorted(b.objects.items())]
            if versions:
                listed += [(name, o) for name, old in sorted(b.noncurrent.items()) for o in old]
            for name, o in sorted(listed, key=lambda item: (item[0], item[1].generation)):
                if not name.startswith(prefix):
                    continue
                rest = name[len(prefix):]
                if delimiter and delimiter in rest:
                    prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                else:
                    items.append(object_json(b, name, o, req.headers.get('host', '127.0.0.1')))
            out: dict = {"kind": "storage#objects"}
            if items:
                out["items"] = items
            if prefixes:
                out["prefixes"] = sorted(prefixes)
            return out

    def upload(req: Request, bucket: str):
        kind = req.query.get("uploadType", "")
        with world.lock:
            b = _bucket(world, bucket)
            if kind == "media":
                return _store(world, b, req, req.query["name"], req.body, req.headers.get("content-type", ""))
            if kind == "multipart":
                meta, data = _multipart(req)
                return _store(world, b, req, meta.get("name") or req.query.get("name", ""), data, meta.get("contentType", ""))
            if kind == "resumable" and "upload_id" not in req.query:
                meta = req.json() if req.body else {}
                upload_id = f"emu-{world.next_id()}"
                world.uploads[upload_id] = Upload(bucket, meta.get("name") or req.query.get("name", ""),
                                                  meta.get("contentType") or req.headers.get("x-upload-content-type", ""))
                host = req.headers.get("host", "127.0.0.1")
                return Response(200, b"", {"Location": f"http://{host}{req.raw_path}?uploadType=resumable&upload_id={upload_id}"})
        raise ApiError(400, f"The emulator does not support uploadType={kind!r}", "INVALID_ARGUMENT")

    def resumable_chunk(req: Request, bucket: str):
        upload_id = req.query.get("upload_id", "")
        with world.lock:
            up = world.uploads.get(upload_id)
            if up is None:
                raise not_found(f"No such upload session {upload_id}")
            match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", req.headers.get("content-range", f"bytes */{len(req.body)}").strip())
            if match is None:
                raise ApiError(400, "Bad Content-Range", "INVALID_ARGUMENT")
            first, _, total = match.groups()
            if first is not None:
                start = int(first)
                if start > len(up.data):
                    raise ApiError(400, f"Chunk starts at {start}, stored {len(up.data)}", "INVALID_ARGUMENT")
                del up.data[start:]
                up.data += req.body
            if total != "*" and len(up.data) >= int(total):
                del world.uploads[upload_id]
                return _store(world, _bucket(world, up.bucket), req, up.name, bytes(up.data), up.content_type)
            headers = {"Range": f"bytes=0-{len(up.data) - 1}"} if up.data else {}
            return Response(308, b"", headers)

    router.add("GET", S, get_bucket)
    router.add("GET", S + r"/o", list_objects)
    router.add("GET", S + r"/o/(?P<name>[^/]+)", get_object)
    router.add("GET", r"/download" + S + r"/o/(?P<name>[^/]+)", get_object)
    router.add("POST", U + r"/o", upload)
    router.add("PUT", U + r"/o", resumable_chunk)


def _multipart(req: Request) -> tuple[dict, bytes]:
    import json

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + req.headers.get("content-type", "").encode() + b"\r\n\r\n" + req.body)
    parts = list(message.iter_parts())
    if len(parts) != 2:
        raise ApiError(400, "multipart upload needs metadata and media", "INVALID_ARGUMENT")
    return json.loads(parts[0].get_payload(decode=True) or b"{}"), parts[1].get_payload(decode=True) or b""
