from uplink.cli import main

raise SystemExit(main())
