"""Server memory under concurrent large uploads, with and without the bound on uploads in process.

Run: .venv/bin/python bench/bench_uploads.py [--uploads 4] [--size-mb 20] [--limits 2 64] [--runs 3]

For each limit (TABLEFORGE_MAX_CONCURRENT_DECODES; 64 = effectively unbounded) a fresh embedded
server (`tableforge serve`, SQLite, fresh data dir) is started; one user uploads one warm-up image,
then `--uploads` different noise PNGs of `--size-mb` at once. Reported: the server's RSS before the
burst, its peak RSS during it (sampled from /proc every 5 ms), and the difference. Median of runs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import sys
import tempfile
import threading
import time

import httpx
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def noise_png(size_mb: float) -> bytes:
    side = int((size_mb * 1024 * 1024 / 3) ** 0.5)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.005)


async def one_run(limit: int, images: list[bytes], warm: bytes) -> tuple[float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "TABLEFORGE_DATA_DIR": data, "TABLEFORGE_MAX_UPLOAD_BYTES": str(64 * 1024 * 1024),
               "TABLEFORGE_MAX_CONCURRENT_DECODES": str(limit), "TABLEFORGE_LOG_LEVEL": "WARNING",
               "TABLEFORGE_DECODE_WAIT_SECONDS": "120"}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tableforge", "serve", "--port", str(port),
                                                    env=env, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
                for _ in range(300):
                    try:
                        if (await http.get("/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                r = await http.post("/api/auth/register", json={"username": "bench", "password": "correct horse"})
                auth = {"Authorization": f"Bearer {r.json()['token']}"}
                http.cookies.clear()
                room = (await http.post("/api/rooms", json={"name": "r"}, headers=auth)).json()
                url = f"/api/rooms/{room['id']}/assets"
                first = await http.post(url, headers=auth, files={"file": ("w.png", warm, "image/png")})
                assert first.status_code == 201, first.text
                before = rss_mb(proc.pid)
                sampler = PeakSampler(proc.pid)
                sampler.start()
                replies = await asyncio.gather(*(
                    http.post(url, headers=auth, files={"file": (f"{i}.png", d, "image/png")})
                    for i, d in enumerate(images)))
                sampler.running = False
                sampler.join()
                assert [r.status_code for r in replies] == [201] * len(images), [r.text[:200] for r in replies]
                return before, sampler.peak
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--limits", type=int, nargs="+", default=[2, 64])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    images = [noise_png(args.size_mb) for _ in range(args.uploads)]
    warm = noise_png(1)
    print(f"{args.uploads} concurrent uploads of {len(images[0]) / 1e6:.1f} MB PNGs; median of {args.runs} runs")
    print("| limit | RSS before (MB) | peak RSS (MB) | added (MB) |")
    print("|---|---|---|---|")
    for limit in args.limits:
        results = [await one_run(limit, images, warm) for _ in range(args.runs)]
        before = statistics.median(b for b, _ in results)
        peak = statistics.median(p for _, p in results)
        added = statistics.median(p - b for b, p in results)
        print(f"| {limit} | {before:.0f} | {peak:.0f} | {added:.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
