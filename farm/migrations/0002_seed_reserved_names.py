from django.db import migrations

# Names that collide with URL paths and services of a typical farm; ops can edit the list.
RESERVED = "w wiki www api static admin meta login logout oidc portal auth mail ftp cdn test".split()


def seed(apps, schema_editor):
    ReservedName = apps.get_model("farm", "ReservedName")
    for name in RESERVED:
        ReservedName.objects.get_or_create(name=name, defaults={"reason": "seeded"})


def unseed(apps, schema_editor):
    apps.get_model("farm", "ReservedName").objects.filter(name__in=RESERVED, reason="seeded").delete()


class Migration(migrations.Migration):
    dependencies = [("farm", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
