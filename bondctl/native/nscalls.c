/*
 * bondctl.netlink._nscalls: setns(2) and unshare(2) for Python 3.11, which lacks os.setns and
 * os.unshare (3.12 has both). The plugin artifact builds it (packaging/build_artifact.py) so
 * its direct path enters the pod's namespace without ctypes: importing ctypes and opening
 * libc through it is about 10 ms of every ADD and DEL under User-Mode Linux, this about one.
 * Without it, bondctl.netlink.ns falls back to ctypes.
 *
 * Same signatures and errors as os.setns(fd, nstype) and os.unshare(flags).
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <sched.h>

static PyObject *nscalls_setns(PyObject *self, PyObject *args) {
    int fd, nstype = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "i|i:setns", &fd, &nstype))
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = setns(fd, nstype);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *nscalls_unshare(PyObject *self, PyObject *args) {
    int flags;
    (void)self;
    if (!PyArg_ParseTuple(args, "i:unshare", &flags))
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = unshare(flags);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setns", nscalls_setns, METH_VARARGS, "setns(fd, nstype=0): as os.setns"},
    {"unshare", nscalls_unshare, METH_VARARGS, "unshare(flags): as os.unshare"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_nscalls", "setns and unshare without ctypes", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__nscalls(void) { return PyModule_Create(&module); }
