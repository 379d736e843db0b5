/*
 * bond: the CNI plugin's launcher. It starts the Python runtime bundled next to it, so a node
 * needs no Python and no packages:
 *
 *   DIR/bond                    this program (static: it needs nothing from the node)
 *   DIR/.bond-runtime           symlink to the current runtime, swapped atomically on upgrade
 *   DIR/.bond-runtime-DIGEST/   lib/ld.so (the bundled glibc loader) and libraries, bin/python,
 *                               bin/python._pth (the exact sys.path), boot.py, manifest.json
 *
 * A runtime made from a pip install (bondctl/cni/runtime.py) has no lib/ld.so: it starts with
 * its `boot` script instead, whose #! line names the interpreter it was built for.
 *
 * packaging/shim.c includes this file (with BOND_SHIM defined) for its direct path.
 *
 * The symlink is resolved once, here: an upgrade that swaps it while this process starts cannot
 * mix an old loader with a new interpreter. The interpreter runs under the bundled loader with
 * --library-path, so it uses the bundled glibc whatever the node has, and the programs it starts
 * (ip, IPAM plugins) inherit no LD_LIBRARY_PATH.
 *
 * The marker string below is how the installer recognises this file as ours without running it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUNTIME_LINK ".bond-runtime"

__attribute__((used)) static const char marker[] = "BONDCTL-CNI-LAUNCHER/1";

/* The CNI contract: errors go to stdout as JSON, with a non-zero exit. */
static int fail(const char *what, const char *path, int err) {
    printf("{\"cniVersion\": \"1.1.0\", \"code\": 100, \"msg\": \"bond: %s\", "
           "\"details\": \"%s: %s (reinstall the plugin: bondctl cni install)\"}\n",
           what, path, strerror(err));
    return 1;
}

static int join(char *out, const char *dir, const char *rel) {
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, rel);
    return n > 0 && n < PATH_MAX;
}

/* Replace this process with the runtime next to our executable; returns only on failure,
 * having printed the CNI error. */
static int direct(int argc, char **argv) {
    char self[PATH_MAX], link[PATH_MAX], runtime[PATH_MAX];
    char loader[PATH_MAX], libdir[PATH_MAX], python[PATH_MAX], boot[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return fail("cannot locate itself", "/proc/self/exe", errno);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return fail("cannot locate itself", self, EINVAL);
    *slash = '\0';
    if (!join(link, self, RUNTIME_LINK))
        return fail("path too long", self, ENAMETOOLONG);
    if (realpath(link, runtime) == NULL)
        return fail("runtime missing", link, errno);
    if (!join(loader, runtime, "lib/ld.so") || !join(libdir, runtime, "lib") ||
        !join(python, runtime, "bin/python") || !join(boot, runtime, "boot.py"))
        return fail("path too long", runtime, ENAMETOOLONG);
    if (access(loader, X_OK) != 0) {
        if (!join(boot, runtime, "boot"))
            return fail("path too long", runtime, ENAMETOOLONG);
        argv[0] = boot;
        execv(boot, argv);
        return fail("cannot start the runtime", boot, errno);
    }

    /* loader --library-path LIB python -I -S -B boot.py [args...] */
    char **args = calloc((size_t)argc + 8, sizeof *args);
    if (args == NULL)
        return fail("out of memory", runtime, ENOMEM);
    int i = 0;
    args[i++] = loader;
    args[i++] = "--library-path";
    args[i++] = libdir;
    args[i++] = python;
    args[i++] = "-I";
    args[i++] = "-S";
    args[i++] = "-B";
    args[i++] = boot;
    for (int a = 1; a < argc; a++)
        args[i++] = argv[a];
    args[i] = NULL;
    execv(loader, args);
    return fail("cannot start the bundled runtime", loader, errno);
}

#ifndef BOND_SHIM
int main(int argc, char **argv) { return direct(argc, argv); }
#endif
