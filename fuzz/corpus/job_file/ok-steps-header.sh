#!/bin/sh
# /// rota
# id = "with-steps"
# [[steps]]
# id = "one"
# sh = "echo one"
# [[steps]]
# id = "two"
# needs = "one"
# script = "steps-header.sh"
# ///
echo hi
