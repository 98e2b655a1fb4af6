#!/bin/sh
# /// rota
# id = "x"
echo hi
