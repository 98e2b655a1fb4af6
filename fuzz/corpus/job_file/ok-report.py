#!/usr/bin/env python3
# /// rota
# id = "nightly-report"
# description = "Nightly report"
#
# [params]
# day = "today"
#
# [[triggers]]
# cron = "0 0 6 * * *"
# ///
print("report")
