"""Every container image is pinned, and pinned as deploy/images.yaml's policy says: official
library images by tag and digest (digests recorded with where they were read), others by an
exact release tag. The images are collected from what Docker Compose resolves, from the
Kubernetes manifests and from the Dockerfile, so a new or changed image cannot slip past."""

import json
import re

import yaml
from support.deploy_files import BIN, DEPLOY, ROOT, run

POLICY = yaml.safe_load((DEPLOY / "images.yaml").read_text())["images"]
DIGEST_REF = re.compile(r"^[a-z0-9._-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
FLOATING = re.compile(r"^(latest|stable|main|edge|\d+|\d+\.\d+)(-[a-z]+)?$")


def images_in_use() -> dict[str, set[str]]:
    """{image reference: {where it is used}}."""
    used: dict[str, set[str]] = {}
    compose = json.loads(run(BIN / "docker-compose", "--project-directory", ROOT, "-f",
                             ROOT / "docker-compose.yml", "--env-file", ROOT / ".env.example",
                             "config", "--format", "json").stdout)
    for name, service in compose["services"].items():
        if "build" not in service:  # built here from the Dockerfile: its base is checked below
            used.setdefault(service["image"], set()).add(f"docker-compose.yml:{name}")
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            spec = doc.get("spec", {})
            pod = spec.get("template", {}).get("spec", {})
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                used.setdefault(container["image"], set()).add(path.name)
            if "imageName" in spec:
                used.setdefault(spec["imageName"], set()).add(path.name)
    dockerfile = (DEPLOY / "docker/Dockerfile").read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M)
    used.setdefault(base, set()).add("deploy/docker/Dockerfile")
    return used


def test_every_image_in_use_is_listed_in_the_policy_file():
    used = images_in_use()
    listed = {entry["ref"] for entry in POLICY}
    assert set(used) - listed == set(), "add these to deploy/images.yaml"
    assert listed - set(used) == set(), "deploy/images.yaml lists images nothing uses"


def test_official_images_are_pinned_by_a_digest_with_its_source():
    for entry in POLICY:
        ref = entry["ref"]
        official = "/" not in ref.split("@")[0].split(":")[0]
        if official:
            assert entry["pin"] == "digest", ref
        if entry["pin"] == "digest":
            assert DIGEST_REF.match(ref), ref
            name, tag = ref.split("@")[0].split(":")
            # where the digest was read: the repo-info file of that very tag, at a commit
            assert re.fullmatch(
                rf"docker-library/repo-info repos/{re.escape(name)}/remote/{re.escape(tag)}\.md"
                r" @ [0-9a-f]{40}", entry["source"]), ref


def test_other_images_are_pinned_to_an_exact_release():
    for entry in POLICY:
        if entry["pin"] == "digest":
            continue
        assert entry["pin"] in ("tag", "own") and entry.get("note"), entry
        assert "@" not in entry["ref"]
        tag = entry["ref"].rsplit(":", 1)[1]
        assert not FLOATING.match(tag), f"{entry['ref']}: a floating tag"
        assert re.search(r"\d+\.\d+", tag) or re.search(r"\d{4}-\d{2}-\d{2}", tag), entry["ref"]


def test_the_same_image_is_pinned_the_same_way_everywhere():
    by_name: dict[str, set[str]] = {}
    for ref in images_in_use():
        by_name.setdefault(ref.split("@")[0].rsplit(":", 1)[0], set()).add(ref)
    assert {name: refs for name, refs in by_name.items() if len(refs) > 1} == {}
