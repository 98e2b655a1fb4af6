#!/usr/bin/env python3
# /// rota
# id = "header-bad"
# concurrency = 0
# [[triggers]]
# cron = 5
# ///
print("hi")
