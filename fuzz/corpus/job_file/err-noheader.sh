#!/bin/sh
echo no header
