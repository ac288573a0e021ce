"""A bot that remembers: run it twice and it knows what happened the first time.

python examples/quickstart.py
"""

from botwire import Memory

mem = Memory("quickstart-bot")

runs = mem.incr("runs")
mem.set("user_42_prefs", {"language": "en", "timezone": "Europe/Berlin"}, ttl=3600)
length = mem.append("chat:42", {"role": "user", "content": f"hello from run {runs}"}, max_len=5)

print(f"run {runs}: this bot has started {runs} time(s)")
print("prefs:", mem.get("user_42_prefs"))
print(f"chat history ({length} newest messages):")
for message in mem.get("chat:42"):
    print("  ", message)
print("stored in", mem.url)
