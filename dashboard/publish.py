"""Publish the static dashboard to an S3 bucket with a website configuration.

What a publish writes, in this order (so a page never names a file not yet there):
- `assets/<version>/...`: the ES modules, the stylesheet and the icon, in a folder named by
  a hash of their content (the build's version). The modules import each other by relative
  path, so the folder holds together; a new build is a new folder, and a year's `immutable`
  caching is safe.
- `404.html`, the website's error document (a plain page linking to the root).
- `index.html`, the shell, pointed at the API (`--api-url`), with `no-cache`: browsers ask
  again each time (a 304 when unchanged), so they load the latest publish's assets.

Then the website configuration (index document index.html, error document 404.html) and,
unless `public=False`, public read: the bucket's Block Public Access is set to allow a
public *policy* (ACLs stay blocked: the bucket owns its objects) and one policy statement
(Sid `DjsDashboardPublicRead`, merged with any others) lets anyone s3:GetObject. With
`public=False` (CloudFront with Origin Access Control) the bucket blocks all public access
and that statement is taken out again. Last, every
object under `assets/` that this publish did not write (an earlier publish's) is deleted;
the bucket's other keys are left alone.

Every S3 call goes through `common.aws`, so `AWS_ENDPOINT_URL` and `DJS_AWS_LOCALSTACK`
point it at moto or LocalStack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from common import aws
from dashboard.build import CONTENT_TYPES, SHELL, Asset, Site, build_site

ERROR_PAGE = "404.html"
ASSETS = "assets/"
POLICY_SID = "DjsDashboardPublicRead"
# The shell and the error page: always revalidated. Assets: content-addressed folders.
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
# S3's DeleteObjects takes at most this many keys per call.
DELETE_BATCH = 1000

# S3 general purpose bucket names (docs.aws.amazon.com/AmazonS3/latest/userguide/
# bucketnamingrules.html): 3-63 characters, labels of lowercase letters, digits and hyphens
# separated by single dots, each label starting and ending with a letter or digit.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_BUCKET = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_IP_ADDRESS = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# Website endpoints are s3-website-REGION in these (older) regions, s3-website.REGION in
# every other.
_DASH_REGIONS = frozenset(
    {
        "us-east-1",
        "us-west-1",
        "us-west-2",
        "eu-west-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "sa-east-1",
        "us-gov-west-1",
    }
)

_ERROR_HTML = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'">
<meta name="referrer" content="no-referrer">
<title>djs \xc2\xb7 not found</title>
</head>
<body><p>Nothing here. The dashboard is at <a href="/">the site's root</a>.</p></body>
</html>
"""


class BadBucketName(ValueError):
    """A name S3 would refuse (or one that cannot serve a website)."""


class PublishFailed(Exception):
    """S3 refused a step of the publish; the message says which and what to do."""


@dataclass(frozen=True)
class Published:
    bucket: str
    region: str
    created: bool
    uploaded: tuple[str, ...]
    deleted: tuple[str, ...]
    public: bool

    @property
    def url(self) -> str:
        return website_url(self.bucket, self.region)


def check_bucket_name(name: str) -> str:
    """`name` if S3 takes it as a general purpose bucket's name, else BadBucketName."""
    why = _name_problem(name)
    if why:
        raise BadBucketName(f"bad bucket name {name[:80]!r}: {why}")
    return name


def _name_problem(name: str) -> str:
    if not 3 <= len(name) <= 63:
        return "a bucket name has 3 to 63 characters"
    if not _BUCKET.match(name):
        return (
            "use lowercase letters, digits, hyphens and single dots, starting and ending "
            "each dot-separated part with a letter or digit"
        )
    if _IP_ADDRESS.match(name):
        return "a bucket name must not look like an IP address"
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return "S3 reserves that prefix or suffix"
    return ""


def website_url(bucket: str, region: str) -> str:
    """The bucket's S3 website endpoint (HTTP only: S3 website endpoints have no TLS)."""
    dot = "-" if region in _DASH_REGIONS else "."
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"http://{bucket}.s3-website{dot}{region}.{domain}"


def versioned_site(roles: Mapping[tuple[str, str], str], api_url: str) -> Site:
    """The site whose shell names its assets under assets/<version>/."""
    version = build_site(roles, api_url=api_url).version
    return build_site(roles, api_url=api_url, asset_base=f"{ASSETS}{version}/")


def site_files(site: Site) -> dict[str, tuple[Asset, str]]:
    """Every key a publish writes, in upload order, with its body and Cache-Control."""
    files = {f"{ASSETS}{site.version}/{name}": (a, IMMUTABLE) for name, a in site.assets.items()}
    files[ERROR_PAGE] = (Asset(_ERROR_HTML, CONTENT_TYPES[".html"]), NO_CACHE)
    files[SHELL] = (site.shell, NO_CACHE)
    return files


def publish(site: Site, bucket: str, public: bool = True) -> Published:
    """Upload `site` to `bucket` (made if absent) as a website; see the module docstring."""
    check_bucket_name(bucket)
    s3 = aws.client("s3")
    try:
        created = _ensure_bucket(s3, bucket, aws.region())
        region = _bucket_region(s3, bucket)
        files = site_files(site)
        for key, (asset, cache) in files.items():
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=asset.body,
                ContentType=asset.content_type,
                CacheControl=cache,
            )
        s3.put_bucket_website(
            Bucket=bucket,
            WebsiteConfiguration={
                "IndexDocument": {"Suffix": SHELL},
                "ErrorDocument": {"Key": ERROR_PAGE},
            },
        )
        if public:
            _allow_public_read(s3, bucket)
        else:
            _drop_public_read(s3, bucket)
        deleted = _delete_stale(s3, bucket, set(files))
    except ClientError as exc:
        raise PublishFailed(_client_error(exc, bucket)) from exc
    except BotoCoreError as exc:  # no credentials, no endpoint, ...
        raise PublishFailed(f"S3 is unavailable: {exc}") from exc
    return Published(bucket, region, created, tuple(files), deleted, public)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error(exc: ClientError, bucket: str) -> str:
    operation = exc.operation_name
    if _code(exc) in ("AccessDenied", "403") and operation == "PutBucketPolicy":
        return (
            f"S3 refused a public policy on {bucket} (AccessDenied): the account's Block "
            "Public Access forbids public buckets. Turn BlockPublicPolicy and "
            "RestrictPublicBuckets off for the account (aws s3control "
            "put-public-access-block), or publish with --private and serve the bucket "
            "through CloudFront with Origin Access Control"
        )
    message = exc.response.get("Error", {}).get("Message", "") or _code(exc)
    return f"S3 {operation} on {bucket} failed: {_code(exc)}: {message}"


def _ensure_bucket(s3: Any, bucket: str, region: str) -> bool:
    """Make the bucket in `region` unless it exists; True if it was made."""
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if _code(exc) in ("403", "AccessDenied", "Forbidden"):
            raise PublishFailed(
                f"bucket {bucket} exists but these credentials may not use it (another "
                "account's bucket, or no s3:ListBucket on it)"
            ) from exc
        if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    # us-east-1 takes no LocationConstraint (S3 refuses one naming it).
    where = {} if region == "us-east-1" else {"LocationConstraint": region}
    try:
        if where:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=where)
        else:
            s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) == "BucketAlreadyOwnedByYou":
            return False
        if _code(exc) == "BucketAlreadyExists":
            raise PublishFailed(
                f"bucket name {bucket} is taken by another account (bucket names are global)"
            ) from exc
        raise
    return True


def _bucket_region(s3: Any, bucket: str) -> str:
    # None (or "") is us-east-1; "EU" is the legacy name of eu-west-1.
    constraint = str(s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "")
    return {"": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)


def public_read_statement(bucket: str) -> dict[str, Any]:
    return {
        "Sid": POLICY_SID,
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }


def _block_public_access(s3: Any, bucket: str, policies: bool) -> None:
    """The bucket's Block Public Access: public ACLs always blocked; public policies too
    unless the site is public (`policies` False)."""
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": policies,
            "RestrictPublicBuckets": policies,
        },
    )


def _allow_public_read(s3: Any, bucket: str) -> None:
    """Let a public policy through the bucket's Block Public Access, then add ours."""
    _block_public_access(s3, bucket, policies=False)
    policy = _policy(s3, bucket)
    others = [s for s in policy.get("Statement", []) if s.get("Sid") != POLICY_SID]
    policy["Statement"] = [*others, public_read_statement(bucket)]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def _drop_public_read(s3: Any, bucket: str) -> None:
    """Block public access again, and take out the statement an earlier public publish added
    (the others stay: a CloudFront OAC statement is not public)."""
    _block_public_access(s3, bucket, policies=True)
    policy = _policy(s3, bucket)
    others = [s for s in policy.get("Statement", []) if s.get("Sid") != POLICY_SID]
    if len(others) == len(policy.get("Statement", [])):
        return
    if others:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({**policy, "Statement": others}))
    else:
        s3.delete_bucket_policy(Bucket=bucket)


def _policy(s3: Any, bucket: str) -> dict[str, Any]:
    try:
        policy: dict[str, Any] = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        if _code(exc) != "NoSuchBucketPolicy":
            raise
        return {"Version": "2012-10-17", "Statement": []}
    statements = policy.get("Statement", [])
    # A policy may hold one statement as an object rather than a list of them.
    policy["Statement"] = [statements] if isinstance(statements, dict) else list(statements)
    return policy


def _delete_stale(s3: Any, bucket: str, keep: set[str]) -> tuple[str, ...]:
    """Delete what an earlier publish left under assets/ and this one did not write."""
    stale = [key for key in _keys(s3, bucket, ASSETS) if key not in keep]
    for start in range(0, len(stale), DELETE_BATCH):
        batch = stale[start : start + DELETE_BATCH]
        answer = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise PublishFailed(
                f"S3 kept {len(answer['Errors'])} stale objects of {bucket}, e.g. "
                f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
            )
    return tuple(stale)


def _keys(s3: Any, bucket: str, prefix: str) -> Iterable[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]
