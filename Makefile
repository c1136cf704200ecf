# Convenience targets; the two README commands work without make.
.PHONY: test demo screenshots bench build dist image

test:            ## the whole suite, as CI runs it
	./scripts/test

demo:            ## the main job against the demo ERP (dashboard on :8080)
	go run ./cmd/jobrunner serve --demo

screenshots:     ## regenerate docs/screenshots/*.png with headless Chromium
	JOBRUNNER_SCREENSHOTS=1 go test ./api -run TestBrowser -count=1

bench:           ## jobrunner bench on the local MariaDB (database jobrunner_bench)
	mariadb --protocol=tcp -h127.0.0.1 -uroot -e "CREATE DATABASE IF NOT EXISTS jobrunner_bench"
	go run ./cmd/jobrunner bench --db mysql://root@127.0.0.1:3306/jobrunner_bench --runs 50000 --workers 1000 --batch 500 --json

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:           ## a static binary with its VCS information (bin/jobrunner)
	CGO_ENABLED=0 go build -buildvcs=true -trimpath -o bin/jobrunner ./cmd/jobrunner

dist:            ## release binaries for linux/amd64 and linux/arm64 with SHA-256 checksums (dist/)
	./scripts/dist $(VERSION)

image:           ## the container image localhost/jobrunner:dev, built offline (podman or docker)
	./scripts/image
