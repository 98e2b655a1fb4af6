#!/bin/sh
# /// rota
# interpreter = "bash -eu"
# ///
rm -rf /tmp/rota-scratch
