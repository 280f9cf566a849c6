"""Each feature's state in Redis: the job store, keys, the event relay, heartbeats and requeues,
spread plans, live sessions, webhook events. Modules here own their Redis keys and Lua scripts;
nothing outside them names a key."""
