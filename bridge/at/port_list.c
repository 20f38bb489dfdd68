/* Finding the modem's port (see port_int.h for the other files): the
 * known modems and the USB interface of their AT port, the serial ports
 * libserialport lists, at_port_find_auto and at_port_list. */
#include "at/port_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libserialport.h>

#include "core/log.h"
/* Known modems: the USB interface that carries the primary AT port.
 *
 * Source: ModemManager's src/plugins/simtech/77-mm-simtech-port-types.rules
 * (ID_MM_PORT_TYPE_AT_PRIMARY per bInterfaceNumber), which agrees with the
 * Linux option driver (drivers/usb/serial/option.c) binding these
 * interfaces, and with SIMCom's usual ttyUSB numbering (the AT port is
 * /dev/ttyUSB2 in both compositions: in 9011 the RNDIS function takes
 * interfaces 0 and 1, so ttyUSB0..2 are interfaces 2..4).
 *
 * Confidence:
 *  - 9001, 9205, 9206: high (ModemManager rules, long-standing).
 *  - 9011 interface 4: high for A7600E-H/A7602E-H (ModemManager rule);
 *    the A7670 family (same ASR platform) uses the same RNDIS composition
 *    by default, which matches the ttyUSB2 AT port users report.
 *  - Not listed, uncertain: 9003 (SIM7600 MBIM mode) and the A76xx ECM
 *    composition; for those, pass --port explicitly. */
struct at_port_usb_id {
    uint16_t vid;
    uint16_t pid;
    uint8_t iface;
    const char *name;
};

static const struct at_port_usb_id at_port_known[] = {
    { 0x1e0e, 0x9011, 4, "SIMCom A76xx/A7600/SIM7600 (RNDIS)" },
    { 0x1e0e, 0x9001, 2, "SIMCom SIM7000/SIM7100/SIM7600" },
    { 0x1e0e, 0x9205, 2, "SIMCom SIM7070/SIM7080/SIM7090" },
    { 0x1e0e, 0x9206, 2, "SIMCom SIM7070/SIM7080/SIM7090 (alt. layout)" },
};

const char *at_port_known_modem(int vid, int pid, int iface)
{
    for (size_t i = 0; i < sizeof(at_port_known) / sizeof(at_port_known[0]); i++) {
        const struct at_port_usb_id *k = &at_port_known[i];
        if (k->vid == vid && k->pid == pid && k->iface == iface)
            return k->name;
    }
    return NULL;
}

/* The USB interface number of a tty, from sysfs: ttyACM's device is the
 * interface itself, ttyUSB's is a usb-serial port below the interface.
 * -1 when not a USB interface or unreadable. */
static int usb_iface(const char *devpath)
{
    const char *name = strrchr(devpath, '/');
    name = name ? name + 1 : devpath;
    if (!*name || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return -1;
    static const char *const rel[] = { "device/bInterfaceNumber", "device/../bInterfaceNumber" };
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "/sys/class/tty/%s/%s", name, rel[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        unsigned int v;
        int ok = fscanf(f, "%x", &v);
        fclose(f);
        if (ok == 1 && v < 256)
            return (int)v;
    }
    return -1;
}

struct port_info {
    char path[PATH_MAX];
    int vid, pid; /* -1 when not USB */
    int iface;
    const char *model; /* known modem AT port, or NULL */
    char serial[128];
    char desc[256];
};

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const struct port_info *)a)->path, ((const struct port_info *)b)->path);
}

/* All serial ports, sorted by path. Caller frees *out. */
static int enumerate(struct port_info **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    struct sp_port **list = NULL;
    enum sp_return r = sp_list_ports(&list);
    if (r != SP_OK) {
        /* No /sys/class/tty (a minimal container) reads as "no ports". */
        int ret = port_sp_errno(r);
        log_debug("port: listing serial ports: %s", strerror(-ret));
        return ret == -ENOENT ? 0 : ret;
    }
    size_t n = 0;
    while (list[n])
        n++;
    struct port_info *info = calloc(n ? n : 1, sizeof(*info));
    if (!info) {
        sp_free_port_list(list);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct port_info *p = &info[i];
        const char *name = sp_get_port_name(list[i]);
        snprintf(p->path, sizeof(p->path), "%s", name ? name : "?");
        const char *desc = sp_get_port_description(list[i]);
        snprintf(p->desc, sizeof(p->desc), "%s", desc ? desc : "");
        p->vid = p->pid = p->iface = -1;
        if (sp_get_port_transport(list[i]) == SP_TRANSPORT_USB) {
            if (sp_get_port_usb_vid_pid(list[i], &p->vid, &p->pid) != SP_OK)
                p->vid = p->pid = -1;
            const char *serial = sp_get_port_usb_serial(list[i]);
            snprintf(p->serial, sizeof(p->serial), "%s", serial ? serial : "");
            p->iface = usb_iface(p->path);
            if (p->vid >= 0)
                p->model = at_port_known_modem(p->vid, p->pid, p->iface);
        }
    }
    sp_free_port_list(list);
    qsort(info, n, sizeof(*info), cmp_info);
    *out = info;
    *count = n;
    return 0;
}

/* The first known modem AT port in path order, or NULL. */
static const struct port_info *pick_auto(const struct port_info *info, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (info[i].model)
            return &info[i];
    }
    return NULL;
}

int at_port_find_auto(char *path, size_t size)
{
    if (!path || size == 0)
        return -EINVAL;
    struct port_info *info = NULL;
    size_t n = 0;
    int ret = enumerate(&info, &n);
    if (ret < 0)
        return ret;
    const struct port_info *pick = pick_auto(info, n);
    if (!pick) {
        ret = -ENODEV;
        goto out;
    }
    for (const struct port_info *p = pick + 1; p < info + n; p++) {
        if (p->model)
            log_warn("port: auto: several modems; using %s, ignoring %s (set --port)",
                     pick->path, p->path);
    }
    if (strlen(pick->path) >= size) {
        ret = -ENOSPC;
        goto out;
    }
    memcpy(path, pick->path, strlen(pick->path) + 1);
    log_debug("port: auto: %s is the AT port of a %s", pick->path, pick->model);

out:
    free(info);
    return ret;
}

/* The /dev/serial/by-id name that points at path, for display. */
static bool find_by_id(const char *path, char *out, size_t size)
{
    static const char dir[] = "/dev/serial/by-id";
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char link[PATH_MAX], real[PATH_MAX];
        if (snprintf(link, sizeof(link), "%s/%s", dir, de->d_name) >= (int)sizeof(link))
            continue;
        if (realpath(link, real) && strcmp(real, path) == 0) {
            snprintf(out, size, "%s", link);
            found = true;
        }
    }
    closedir(d);
    return found;
}

int at_port_list(FILE *out)
{
    if (!out)
        return -EINVAL;
    struct port_info *info = NULL;
    size_t n = 0;
    int ret = enumerate(&info, &n);
    if (ret < 0)
        return ret;
    if (n == 0) {
        fprintf(out, "no serial ports found\n");
        free(info);
        return 0;
    }
    const struct port_info *pick = pick_auto(info, n);
    fprintf(out, "%-14s  %-19s  %s\n", "PORT", "USB VID:PID IF", "SERIAL  DESCRIPTION");
    for (size_t i = 0; i < n; i++) {
        const struct port_info *p = &info[i];
        char usb[32] = "-";
        if (p->vid >= 0) {
            if (p->iface >= 0)
                snprintf(usb, sizeof(usb), "%04x:%04x if%02d", p->vid, p->pid, p->iface);
            else
                snprintf(usb, sizeof(usb), "%04x:%04x", p->vid, p->pid);
        }
        fprintf(out, "%-14s  %-19s  serial=%s  %s", p->path, usb, p->serial[0] ? p->serial : "-",
                p->desc[0] ? p->desc : "-");
        char byid[PATH_MAX];
        if (find_by_id(p->path, byid, sizeof(byid)))
            fprintf(out, "  (%s)", byid);
        if (p == pick)
            fprintf(out, "  <- modem AT port (auto): %s", p->model);
        else if (p->model)
            fprintf(out, "  <- modem AT port: %s", p->model);
        fputc('\n', out);
    }
    free(info);
    return (int)n;
}
