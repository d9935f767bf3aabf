"""first_message.py BIN CONFIG PORT: seconds from starting `briefing send
--limit 1` to the first message an `smtp-sink` on PORT receives (the time
the list import leaves before the first message goes out)."""
import os, socket, subprocess, sys, tempfile, time

bin_, config, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
dump = tempfile.mkdtemp(prefix="briefing-first-")
os.chmod(dump, 0o777)  # smtp-sink writes as nobody
# -d writes each message to a file at once (the -c counter is buffered).
sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", f"{dump}/m", f"127.0.0.1:{port}", "100"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        break
    except OSError:
        time.sleep(0.05)
t0 = time.monotonic()
send = subprocess.Popen([bin_, "--config", config, "send", "issues/2025-01-17/issue.toml",
                         "--yes", "--limit", "1"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
first = None
while first is None and send.poll() is None:
    if os.listdir(dump):
        first = time.monotonic() - t0
    time.sleep(0.005)
print(f"{first:.2f}" if first is not None else "?")
send.wait()
sink.kill()
for f in os.listdir(dump):
    os.remove(os.path.join(dump, f))
os.rmdir(dump)
