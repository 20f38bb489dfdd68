void f(struct instance *inst) { events_publish(inst, "status", p, 1, true, NULL, NULL); }
