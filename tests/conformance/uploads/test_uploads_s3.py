"""The S3 backend: what boto3 presigns, checked offline with made-up credentials; and how it
lists and deletes a couple's files, against moto's S3 server.

The POST policy is decoded and its conditions checked; its SigV4 signature is recomputed from
the (fake) secret key, which is exactly what S3 does on receipt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.conformance.uploads.conftest import S3Bucket

from ieum_chat.config import Settings
from ieum_chat.uploads import create_upload_backend

pytestmark = pytest.mark.usefixtures("fake_aws")

BUCKET = "ieum-chat-test"
REGION = "ap-northeast-2"


def s3(**options: Any) -> Any:
    from ieum_chat.uploads.s3 import S3Uploads

    return S3Uploads(BUCKET, max_bytes=1_000_000, ttl=600, region=REGION, **options)


def sigv4_signature(secret: str, date: str, region: str, string_to_sign: str) -> str:
    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    key = sign(("AWS4" + secret).encode(), date)
    for part in (region, "s3", "aws4_request"):
        key = sign(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_presigned_post_pins_key_type_and_size() -> None:
    couple = uuid.uuid4()
    before = datetime.now(UTC)
    ticket = s3().presign(couple, "image/webp", 4321, now=before.timestamp())
    assert ticket.method == "POST"
    assert ticket.upload_url == f"https://{BUCKET}.s3.{REGION}.amazonaws.com/"
    fields = ticket.fields
    key = fields["key"]
    # clients upload to a staging key, never served: the checked file goes to its own
    assert key == f"staging/{ticket.key}"
    assert ticket.key.startswith(f"{couple}/")
    assert key.endswith(".webp")
    assert ticket.image_url == f"https://{BUCKET}.s3.{REGION}.amazonaws.com/{ticket.key}"
    assert fields["Content-Type"] == "image/webp"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    key_id, date, region, service, terminal = fields["x-amz-credential"].split("/")
    assert (key_id, region, service, terminal) == (
        os.environ["AWS_ACCESS_KEY_ID"],
        REGION,
        "s3",
        "aws4_request",
    )
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"bucket": BUCKET} in conditions
    assert {"key": key} in conditions
    assert {"Content-Type": "image/webp"} in conditions
    assert ["content-length-range", 1, 4321] in conditions
    expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 590 <= (expiration - before).total_seconds() <= 610
    expected = sigv4_signature(os.environ["AWS_SECRET_ACCESS_KEY"], date, REGION, fields["policy"])
    assert hmac.compare_digest(fields["x-amz-signature"], expected)


def test_a_changed_policy_no_longer_matches_the_signature() -> None:
    fields = s3().presign(uuid.uuid4(), "image/png", 100, now=0).fields
    policy = json.loads(base64.b64decode(fields["policy"]))
    for condition in policy["conditions"]:
        if isinstance(condition, list) and condition[0] == "content-length-range":
            condition[2] = 10**9
    forged = base64.b64encode(json.dumps(policy).encode()).decode()
    date = fields["x-amz-credential"].split("/")[1]
    assert (
        sigv4_signature(os.environ["AWS_SECRET_ACCESS_KEY"], date, REGION, forged)
        != (fields["x-amz-signature"])
    )


def test_custom_endpoint_uses_path_style_urls() -> None:
    uploads = s3(endpoint_url="http://127.0.0.1:9000/")
    ticket = uploads.presign(uuid.uuid4(), "image/png", 10, now=0)
    assert ticket.upload_url == f"http://127.0.0.1:9000/{BUCKET}"
    assert ticket.image_url.startswith(f"http://127.0.0.1:9000/{BUCKET}/")
    assert uploads.key_of(ticket.image_url) == ticket.key
    assert ticket.fields["key"] == f"staging/{ticket.key}"


def test_public_url_serves_the_images() -> None:
    uploads = s3(public_url="https://img.ieum.example/")
    couple = uuid.uuid4()
    ticket = uploads.presign(couple, "image/jpeg", 10, now=0)
    assert ticket.fields["key"] == f"staging/{ticket.key}"
    assert ticket.image_url == f"https://img.ieum.example/{ticket.key}"
    assert uploads.key_of(ticket.image_url) == ticket.key
    bucket_url = f"https://{BUCKET}.s3.{REGION}.amazonaws.com/{ticket.key}"
    assert uploads.key_of(bucket_url) is None


def test_bucket_setting_selects_s3(tmp_path: Path) -> None:
    from ieum_chat.uploads.s3 import S3Uploads

    settings = Settings(s3_bucket=BUCKET, s3_region=REGION, upload_dir=str(tmp_path / "unused"))
    made = create_upload_backend(settings)
    assert isinstance(made, S3Uploads)
    assert made.bucket == BUCKET
    assert not (tmp_path / "unused").exists()


def test_boto3_is_imported_only_for_s3() -> None:
    code = (
        "import sys; from ieum_chat.app import create_app; from ieum_chat.config import Settings;"
        "from ieum_chat.uploads import create_upload_backend;"
        "create_upload_backend(Settings()); create_app(Settings());"
        "print('boto3' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_listing_and_deleting_go_a_page_and_a_batch_at_a_time(s3_bucket: S3Bucket) -> None:
    """1,001 files: two pages of ListObjectsV2, two DeleteObjects (S3 takes 1,000 keys at
    most), each page requested only once the one before is used up; deleting lists the
    staging prefix too."""
    import boto3

    from ieum_chat.uploads.s3 import S3Uploads

    bucket = s3_bucket.uploads.bucket
    couple = uuid.uuid4()
    keys = {f"{couple}/{secrets.token_hex(16)}.png" for _ in range(1001)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3_bucket.client.put_object(Bucket=bucket, Key=key), keys))
    requests: list[tuple[str, int]] = []
    client = boto3.session.Session().client(
        "s3", region_name=REGION, endpoint_url=s3_bucket.client.meta.endpoint_url
    )

    def listed(params: dict[str, Any], **_: Any) -> None:
        requests.append(("list", 0))

    def deleted(params: dict[str, Any], **_: Any) -> None:
        requests.append(("delete", len(params["Delete"]["Objects"])))

    client.meta.events.register("provide-client-params.s3.ListObjectsV2", listed)
    client.meta.events.register("provide-client-params.s3.DeleteObjects", deleted)
    uploads = S3Uploads(bucket, max_bytes=1000, ttl=600, client=client)

    listing = uploads.iter_keys(couple)
    first = next(listing)
    assert requests == [("list", 0)]  # one page read, not the whole listing
    assert {first, *listing} == keys
    assert requests == [("list", 0), ("list", 0)]
    requests.clear()
    assert uploads.delete_files(couple) == 1001
    # the staging prefix's listing (empty: nothing uploaded and never checked), then the files
    assert requests == [("list", 0), ("list", 0), ("delete", 1000), ("list", 0), ("delete", 1)]
    assert s3_bucket.client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    requests.clear()
    assert uploads.delete_files(couple) == 0
    assert requests == [("list", 0), ("list", 0)]
