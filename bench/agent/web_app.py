"""The Flask service bench_web.py loads: a preloaded heap of about 430,000 objects (a catalog
of products with their variants, as a service caches at start) and one JSON endpoint that does
a little work per request."""

import json

from flask import Flask

app = Flask(__name__)


class Variant(object):
    def __init__(self, sku, price):
        self.sku = sku
        self.price = price
        self.tags = ["tag-%d" % (sku % 7), "size-%d" % (sku % 5)]


CATALOG = {}
for product in range(15000):
    CATALOG["product-%d" % product] = {
        "name": "Product %d" % product,
        "variants": [Variant(product * 10 + v, 9.99 + v) for v in range(3)],
        "stock": {"warehouse-%d" % w: w * product % 17 for w in range(3)},
    }


@app.route("/")
def index():
    key = "product-%d" % (len(CATALOG) // 2)
    item = CATALOG[key]
    return json.dumps({"name": item["name"],
                       "prices": [v.price for v in item["variants"]],
                       "stock": sum(item["stock"].values())})
