#!/bin/sh
# unitsync: after=web
# Reaches the service: it runs only once web.sh's port is open.
wget -q -O /run/fetched http://127.0.0.1:8080/
echo probe >> /run/order
