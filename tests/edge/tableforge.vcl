# Varnish in front of TableForge (used by tests/edge; a starting point for operators).
# Caches what the app marks public (honouring s-maxage and stale-while-revalidate), never member
# data (`private`; and the built-in VCL passes requests with Authorization or Cookie), and drops
# objects by surrogate key when the app purges (TABLEFORGE_CDN_PURGE_URL):
#   PURGE with `xkey: catalog system-<id>` -> vmod_xkey hard purge (varnish-modules), or
#   BAN   with the same header             -> a ban on the objects' xkey header.
vcl 4.1;

import xkey;

backend default {
  .host = "127.0.0.1";
  .port = "@BACKEND_PORT@";
}

acl purgers {
  "127.0.0.1";
  "::1";
}

sub vcl_recv {
  if (req.method == "PURGE") {
    if (client.ip !~ purgers) { return (synth(403, "Forbidden")); }
    if (req.http.xkey) {
      set req.http.X-Purged = xkey.purge(req.http.xkey);
      return (synth(200, "Purged " + req.http.X-Purged));
    }
    return (purge);
  }
  if (req.method == "BAN") {
    if (client.ip !~ purgers) { return (synth(403, "Forbidden")); }
    if (!req.http.xkey) { return (synth(400, "xkey header required")); }
    ban("obj.http.xkey ~ (^|\s)(" + regsuball(req.http.xkey, "\s+", "|") + ")(\s|$)");
    return (synth(200, "Banned"));
  }
}

sub vcl_deliver {
  if (obj.hits > 0) {
    set resp.http.X-Cache = "HIT";
  } else {
    set resp.http.X-Cache = "MISS";
  }
  set resp.http.X-Cache-Hits = obj.hits;
}
