"""`djs dashboard publish`: the static dashboard on an S3 website bucket, against moto."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from api_app.auth.roles import MINIMUM_ROLE
from dashboard.build import STATIC
from dashboard.publish import (
    POLICY_SID,
    BadBucketName,
    _client_error,
    check_bucket_name,
    publish,
    site_files,
    versioned_site,
)
from tests.aws_helpers import clean_aws_env, moto_server
from tests.helpers import run_djs

API = "https://api.example.com"
# What a browser must be told of each file (written out here, not taken from the code).
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    clean_aws_env(monkeypatch)
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def _keys(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_every_file_is_uploaded_with_its_type_and_caching(s3: Any) -> None:
    site = versioned_site(MINIMUM_ROLE, API)
    done = publish(site, "djs-dash")
    assert done.created and done.region == "us-east-1"
    assert done.url == "http://djs-dash.s3-website-us-east-1.amazonaws.com"
    static = {p.name for p in STATIC.iterdir() if p.suffix in TYPES}
    assert len(static) >= 10 and {"app.js", "style.css", "icon.svg"} <= static
    expected = {f"assets/{site.version}/{name}" for name in static} | {"index.html", "404.html"}
    assert _keys(s3, "djs-dash") == expected
    for key in expected:
        got = s3.get_object(Bucket="djs-dash", Key=key)
        assert got["ContentType"] == TYPES[Path(key).suffix], key
        cache = got["CacheControl"]
        if key.startswith("assets/"):
            assert cache == "public, max-age=31536000, immutable", key
            assert got["Body"].read() == (STATIC / Path(key).name).read_bytes(), key
        else:
            assert cache == "no-cache", key


def test_the_shell_calls_the_api_and_names_the_versioned_assets(s3: Any) -> None:
    site = versioned_site(MINIMUM_ROLE, API + "/")
    publish(site, "djs-dash")
    shell = s3.get_object(Bucket="djs-dash", Key="index.html")["Body"].read().decode()
    assert f'<meta name="djs-api-url" content="{API}">' in shell
    assert f"connect-src &#39;self&#39; {API};" in shell
    assert f'src="assets/{site.version}/app.js"' in shell
    assert f'href="assets/{site.version}/style.css"' in shell


def test_the_bucket_is_a_public_website(s3: Any) -> None:
    publish(versioned_site(MINIMUM_ROLE, API), "djs-dash")
    website = s3.get_bucket_website(Bucket="djs-dash")
    assert website["IndexDocument"] == {"Suffix": "index.html"}
    assert website["ErrorDocument"] == {"Key": "404.html"}
    block = s3.get_public_access_block(Bucket="djs-dash")["PublicAccessBlockConfiguration"]
    assert block["BlockPublicAcls"] and block["IgnorePublicAcls"]
    assert not block["BlockPublicPolicy"] and not block["RestrictPublicBuckets"]
    [statement] = json.loads(s3.get_bucket_policy(Bucket="djs-dash")["Policy"])["Statement"]
    assert statement["Effect"] == "Allow" and statement["Principal"] == "*"
    assert statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == "arn:aws:s3:::djs-dash/*"


def test_a_second_publish_removes_what_the_first_left(s3: Any) -> None:
    first = versioned_site(MINIMUM_ROLE, API)
    publish(first, "djs-dash")
    s3.put_object(Bucket="djs-dash", Key="assets/old.js", Body=b"stale")
    s3.put_object(Bucket="djs-dash", Key="notes.txt", Body=b"not ours")
    second = dataclasses.replace(first, version="0123456789ab")  # as a new build would be
    done = publish(second, "djs-dash")
    assert not done.created
    ours = set(site_files(second))
    assert _keys(s3, "djs-dash") == ours | {"notes.txt"}
    old = {k for k in site_files(first) if k.startswith("assets/")}
    assert set(done.deleted) == old | {"assets/old.js"}
    again = publish(second, "djs-dash")
    assert again.deleted == () and _keys(s3, "djs-dash") == ours | {"notes.txt"}


def test_publishing_keeps_the_bucket_policy_s_other_statements(s3: Any) -> None:
    s3.create_bucket(Bucket="djs-dash")
    theirs = {
        "Sid": "Theirs",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:DeleteObject",
        "Resource": "arn:aws:s3:::djs-dash/*",
    }
    s3.put_bucket_policy(
        Bucket="djs-dash", Policy=json.dumps({"Version": "2012-10-17", "Statement": theirs})
    )
    site = versioned_site(MINIMUM_ROLE, API)
    for _ in range(2):  # twice: our statement is replaced, never added again
        publish(site, "djs-dash")
    statements = json.loads(s3.get_bucket_policy(Bucket="djs-dash")["Policy"])["Statement"]
    assert sorted(s["Sid"] for s in statements) == sorted([POLICY_SID, "Theirs"])
    publish(site, "djs-dash", public=False)  # private again: ours goes, theirs stays
    statements = json.loads(s3.get_bucket_policy(Bucket="djs-dash")["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["Theirs"]
    block = s3.get_public_access_block(Bucket="djs-dash")["PublicAccessBlockConfiguration"]
    assert all(block.values()), block


def test_the_bucket_is_made_in_the_configured_region(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_aws_env(monkeypatch, region="eu-west-2")
    with mock_aws():
        done = publish(versioned_site(MINIMUM_ROLE, API), "djs-dash-london")
        s3 = boto3.client("s3", region_name="eu-west-2")
        location = s3.get_bucket_location(Bucket="djs-dash-london")["LocationConstraint"]
    assert location == "eu-west-2" and done.region == "eu-west-2"
    assert done.url == "http://djs-dash-london.s3-website.eu-west-2.amazonaws.com"


BAD_NAMES = [
    "ab",
    "a" * 64,
    "Djs-Dash",
    "djs_dash",
    "-djs",
    "djs-",
    "djs..dash",
    "djs.-dash",
    "192.168.1.10",
    "xn--djs",
    "sthree-djs",
    "djs-s3alias",
    "djs--ol-s3",
    "djs dash",
    "djs/dash",
    "",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_bucket_names_are_refused_before_any_call(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a call would fail otherwise
    with pytest.raises(BadBucketName, match="bad bucket name"):
        publish(versioned_site(MINIMUM_ROLE, API), name)


@pytest.mark.parametrize("name", ["abc", "djs-dash", "dash.example.com", "a1" + "b" * 61])
def test_good_bucket_names_pass(name: str) -> None:
    assert check_bucket_name(name) == name


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    clean_aws_env(monkeypatch)
    yield from moto_server()


def test_the_command_publishes_and_says_where_and_what_to_allow(
    moto_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_url}
    args = ["dashboard", "publish", "--bucket", "cli-dash", "--api-url", API]
    result = run_djs(args, env, tmp_path)
    assert result.returncode == 0, result.stderr
    site = "http://cli-dash.s3-website-us-east-1.amazonaws.com"
    assert f"the dashboard: {site}/" in result.stdout
    assert f"DJS_CORS_ORIGINS={site}" in result.stdout
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    assert "index.html" in _keys(s3, "cli-dash")
    refused = run_djs([*args[:3], "Bad_Name", *args[4:]], env, tmp_path)
    assert refused.returncode == 2 and "bad bucket name" in refused.stderr
    no_api = run_djs(args[:4], env, tmp_path)
    assert no_api.returncode == 2 and "--api-url" in no_api.stderr


def test_an_account_wide_block_is_explained_with_the_way_out() -> None:
    refused = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "public policies are blocked"}},
        "PutBucketPolicy",
    )
    message = _client_error(refused, "djs-dash")
    assert "Block Public Access" in message and "--private" in message
    assert "CloudFront" in message and "put-public-access-block" in message
    other = ClientError({"Error": {"Code": "SlowDown", "Message": "later"}}, "PutObject")
    assert _client_error(other, "djs-dash") == "S3 PutObject on djs-dash failed: SlowDown: later"
