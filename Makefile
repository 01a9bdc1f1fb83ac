# KSeFNet for Odoo: the two commands of the README.
#   make demo   run the main job: the whole product against the local KSeF simulator (ARGS=--no-wait)
#   make test   run the whole test suite (core, simulator, cross-addon tests, and the Odoo addons' tests
#               when an Odoo 18 installation is found: ODOO_PATH, default /opt/odoo)
.PHONY: demo test lint bench

demo:
	bash setup/demo.sh $(ARGS)

test:
	bash setup/test.sh

lint:
	bash setup/test.sh --lint-only

bench:
	bash setup/bench.sh
