"""MediaWiki's per-request cost of the farm include (DESIGN section 10): `python -m bench.php`.

For each farm size, a synthetic export folder in a temporary dir: `wikis/<id>.json` for every
wiki (ids `w0000001`..., ~30 settings, ~3 KB each), `hosts.json` with every host (host
routing, `<id>.wikis.example.org`; every 10th wiki has a custom host instead), and the old
layout's whole-farm `farm.json` with the same wikis, for the figure before. Then
`php bench/php_include.php <dir> <mode> <requests> <wikis>` times, in PHP with hrtime(),
what `contrib/mediawiki/FarmSettings.php` does per request (see that script for the modes),
once with APCu off and once with `-d apc.enable_cli=1` when PHP has the apcu extension.

Each run makes the same random requests twice; `apcu_off` and `apcu_on` are the second pass,
`apcu_on_cold` the first (every wiki's first request after a change: APCu misses). Prints
JSON; microseconds per request.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stats import percentile

BASE_DIR = Path(__file__).resolve().parent.parent
SCRIPT = BASE_DIR / "bench" / "php_include.php"
NEW_MODES = ("path", "host", "host-custom")
MODES = (*NEW_MODES, "old-farm-json", "floor")
MERGE_SETTINGS = [
    "wgGroupPermissions",
    "wgFileExtensions",
    "wgNamespacesWithSubpages",
    "wgDefaultUserOptions",
]
# The old mode decodes the whole farm per request: fewer requests at large sizes.
OLD_MODE_BUDGET = 1_000_000
# Room in APCu for the old layout's whole-farm array (32 MB by default); the new layout's
# modes run with PHP's default.
OLD_MODE_APCU_SHM = "4G"
TARGET_US = 1000.0
# Flat: the median at the largest size within this factor (plus slack) of the smallest's.
FLAT_FACTOR = 1.5
FLAT_SLACK_US = 10.0


def wiki_id(n: int) -> str:
    return f"w{n:07d}"


def wiki_host(n: int) -> str:
    return (
        f"www.{wiki_id(n)}-custom.example.com" if n % 10 == 0 else f"{wiki_id(n)}.wikis.example.org"
    )


def wiki_file(n: int) -> dict:
    """A served wiki's `wikis/<id>.json`, with settings like a real wiki's."""
    wiki = wiki_id(n)
    host = wiki_host(n)
    private = n % 7 == 0
    tags = ["private", "beta"] if private else (["beta"] if n % 3 == 0 else [])
    settings = {
        "wgSitename": f"Community wiki number {n} about things",
        "wgMetaNamespace": f"Community_wiki_{n}",
        "wgLogos": {
            "1x": f"https://{host}/images/logo-{wiki}.png",
            "icon": f"https://{host}/images/icon-{wiki}.svg",
        },
        "wgFavicon": f"https://{host}/favicon.ico",
        "wgLanguageCode": ["en", "de", "fr", "es", "ja"][n % 5],
        "wgLocaltimezone": ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"][n % 4],
        "wgDefaultSkin": "vector-2022" if n % 2 else "vector",
        "wgEnableUploads": True,
        "wgMaxUploadSize": 104857600,
        "wgFileExtensions": ["pdf", "svg", "ogg", "odt", "ods", "odp", "mp3"],
        "wgGroupPermissions": {
            "*": {"read": not private, "edit": False, "createaccount": not private},
            "user": {"edit": True, "upload": True, "move": True},
            "autoconfirmed": {"skipcaptcha": True},
            "sysop": {"deletelogentry": True, "deleterevision": True, "interwiki": True},
            "bureaucrat": {"usermerge": True},
        },
        "wgNamespacesWithSubpages": {"0": True, "10": True, "14": False},
        "wgExtraNamespaces": {"3000": "Project_area", "3001": "Project_area_talk"},
        "wgDefaultUserOptions": {"rcdays": 30, "rclimit": 100, "usenewrc": 1},
        "wgRightsText": "Creative Commons Attribution-ShareAlike",
        "wgRightsUrl": "https://creativecommons.org/licenses/by-sa/4.0/",
        "wgRightsIcon": "https://licensebuttons.net/l/by-sa/4.0/88x31.png",
        "wgEmergencyContact": f"admins+{wiki}@wikis.example.org",
        "wgPasswordSender": f"noreply+{wiki}@wikis.example.org",
        "wgEnableEmail": True,
        "wgEnableUserEmail": n % 2 == 0,
        "wgAllowExternalImages": False,
        "wgCapitalLinks": True,
        "wgRCMaxAge": 7776000,
        "wgCookieExpiration": 2592000,
        "wgExternalLinkTarget": "_blank",
        "wgNoFollowLinks": True,
        "wgSiteNotice": f"Welcome to community wiki {n}! Please read the rules before editing.",
        "wgLocalInterwikis": [wiki],
        "wgAllowSiteCSSOnRestrictedPages": False,
        "wgMainPageIsDomainRoot": False,
        "wgRestrictionLevels": ["", "autoconfirmed", "editor", "sysop"],
        "wgNamespaceProtection": {"8": ["editinterface"], "3000": ["editor"]},
        "wgAddGroups": {"bureaucrat": ["sysop", "editor", "bot"], "sysop": ["editor"]},
        "wgRemoveGroups": {"bureaucrat": ["sysop", "editor", "bot"], "sysop": ["editor"]},
        "wgCopyrightIcon": f"<a href='https://{host}/wiki/Copyright'>Copyright</a>",
    }
    return {
        "format": 3,
        "id": wiki,
        "state": "active",
        "family": ["default", "education", "gaming"][n % 3],
        "tags": tags,
        "url": f"https://{host}/",
        "host": host,
        "read_only": False,
        "read_only_reason": None,
        "database": {"type": "mariadb", "name": f"wiki_{wiki}", "cluster": "default"},
        "storage": {
            "type": "filesystem",
            "path": f"/var/lib/wiki-farm-portal/storage/wikis/{wiki}/",
        },
        "settings": settings,
        "merge_settings": MERGE_SETTINGS,
    }


def build_export(root: Path, size: int) -> dict:
    """The new layout and the old farm.json for `size` wikis; returns their sizes in bytes."""
    wikis = root / "wikis"
    wikis.mkdir(parents=True)
    hosts = {}
    wiki_bytes = 0
    with open(root / "farm.json", "w") as farm:
        farm.write('{"format": 2, "wikis": {')
        for n in range(1, size + 1):
            entry = wiki_file(n)
            text = json.dumps(entry)
            wiki_bytes += len(text)
            with open(wikis / f"{entry['id']}.json", "w") as f:
                f.write(text)
            hosts[entry["host"]] = entry["id"]
            old = {k: v for k, v in entry.items() if k not in ("format", "merge_settings")}
            farm.write(("" if n == 1 else ", ") + json.dumps(entry["id"]) + ": " + json.dumps(old))
        farm.write('}, "tombstones": [], "merge_settings": ' + json.dumps(MERGE_SETTINGS) + "}")
    (root / "hosts.json").write_text(json.dumps({"format": 1, "hosts": hosts}))
    return {
        "wiki_file_bytes_mean": round(wiki_bytes / size),
        "hosts_json_bytes": (root / "hosts.json").stat().st_size,
        "farm_json_bytes": (root / "farm.json").stat().st_size,
    }


def summarize_us(samples: list[float]) -> dict:
    return {
        "n": len(samples),
        "median_us": round(statistics.median(samples), 1),
        "p95_us": round(percentile(samples, 0.95), 1),
        "max_us": round(max(samples), 1),
    }


def has_apcu(php: str) -> bool:
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, check=True).stdout
    return "apcu" in modules.lower().split()


def run_php(php: str, export: Path, mode: str, requests: int, size: int, apcu: bool) -> dict:
    argv = [php]
    if apcu:
        argv += ["-d", "apc.enable_cli=1"]
        if mode == "old-farm-json":
            argv += ["-d", f"apc.shm_size={OLD_MODE_APCU_SHM}"]
    argv += [str(SCRIPT), str(export), mode, str(requests), str(size)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout}")
    return json.loads(done.stdout)


def measure(php: str, export: Path, mode: str, requests: int, size: int, apcu: bool) -> dict:
    result = {}
    off = run_php(php, export, mode, requests, size, apcu=False)
    result["apcu_off"] = summarize_us(off["warm_us"])
    if apcu:
        on = run_php(php, export, mode, requests, size, apcu=True)
        result["apcu_on"] = summarize_us(on["warm_us"])
        result["apcu_on_cold"] = summarize_us(on["cold_us"])
        if mode == "old-farm-json":
            result["apcu_shm_size"] = OLD_MODE_APCU_SHM
            result["old_apcu_stored"] = on["old_apcu_stored"]
    return result


def targets(sizes_result: dict, sizes: tuple[int, ...], apcu: bool) -> dict:
    """Under 1 ms (p95) at every size and flat (median), for path and host routing; custom
    hosts (hosts.json) only with APCu, which is what makes them flat."""
    checked = [(mode, "apcu_off") for mode in ("path", "host")]
    if apcu:
        checked += [(mode, "apcu_on") for mode in NEW_MODES]
    small, large = str(min(sizes)), str(max(sizes))
    detail = {}
    for mode, config in checked:
        p95s = [sizes_result[str(size)][mode][config]["p95_us"] for size in sizes]
        low = sizes_result[small][mode][config]["median_us"]
        high = sizes_result[large][mode][config]["median_us"]
        detail[f"{mode}/{config}"] = {
            "p95_max_us": max(p95s),
            "median_ratio_largest_to_smallest": round(high / low, 2) if low else None,
            "met": max(p95s) < TARGET_US and high <= FLAT_FACTOR * low + FLAT_SLACK_US,
        }
    return {
        "per_request_under_1ms_and_flat": all(d["met"] for d in detail.values()),
        "checked": detail,
    }


def run(sizes: tuple[int, ...] = (10, 10_000, 100_000), requests: int = 2000) -> dict:
    php = shutil.which("php")
    if php is None:
        raise RuntimeError("php not found: .ci/install-mediawiki.sh installs php-cli")
    version = subprocess.run(
        [php, "-r", "echo PHP_VERSION;"], capture_output=True, text=True, check=True
    ).stdout
    apcu = has_apcu(php)
    result: dict = {"php_version": version, "apcu": apcu, "requests": requests, "sizes": {}}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-php-") as tmp:
            export = Path(tmp) / "exports"
            started = time.perf_counter()
            files = build_export(export, size)
            print(
                f"{size} wikis: export written in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
            entry: dict = {"files": files}
            for mode in MODES:
                if mode == "host-custom" and size < 10:
                    continue
                n = requests
                if mode == "old-farm-json":
                    n = min(requests, max(10, OLD_MODE_BUDGET // size))
                entry[mode] = measure(php, export, mode, n, size, apcu)
                print(f"{size} wikis, {mode}: {entry[mode]}", file=sys.stderr)
            result["sizes"][str(size)] = entry
    result["targets"] = targets(result["sizes"], sizes, apcu)
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
