"""The Python peer of the rotation benchmark (issue 15): what a hand-written
rotation service does with hvac for one KV secret: read it, make a new
password, write it back with check-and-set. `clients` threads, each with its
own hvac client (a keep-alive session), share `rotations` over `paths`
secrets, each thread on paths of its own (as the rotator side). Prints
`rotations_per_second <n>` on the last line.

    python hvac_peer.py URL TOKEN CLIENTS ROTATIONS PATHS
"""

import secrets
import sys
import threading
import time

import hvac


def main():
    url, token, clients, rotations, paths = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    per_client = rotations // clients
    ready = threading.Barrier(clients + 1)
    errors = []

    def run(i):
        client = hvac.Client(url=url, token=token)
        mine = [f"bench/p{p}" for p in range(paths) if p % clients == i]
        ready.wait()
        try:
            for n in range(per_client):
                path = mine[n % len(mine)]
                read = client.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
                version = read["data"]["metadata"]["version"]
                data = dict(read["data"]["data"], password=secrets.token_urlsafe(24))
                client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, cas=version, mount_point="secret")
        except Exception as e:  # reported, and the run counts as failed
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    if errors:
        sys.exit(f"peer failed: {errors[0]}")
    print(f"rotations_per_second {per_client * clients / took:.1f}")


if __name__ == "__main__":
    main()
