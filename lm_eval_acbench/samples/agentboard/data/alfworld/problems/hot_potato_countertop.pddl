; acbench sample (written for acbench, not from ALFWorld's data): a potato from the fridge is to
; be heated in the microwave and put on the countertop.
(define (problem acbench_hot_potato_countertop)
(:domain alfred)
(:objects
    agent1 - agent
    PotatoType EggType - otype
    FridgeType MicrowaveType CounterTopType - rtype
    Potato_bar_01 Egg_bar_01 - object
    Fridge_bar_01 Microwave_bar_01 CounterTop_bar_01 - receptacle
    loc_bar_00 loc_bar_01 loc_bar_02 loc_bar_03 - location
)
(:init
    (atLocation agent1 loc_bar_00)
    (receptacleType Fridge_bar_01 FridgeType)
    (receptacleType Microwave_bar_01 MicrowaveType)
    (receptacleType CounterTop_bar_01 CounterTopType)
    (receptacleAtLocation Fridge_bar_01 loc_bar_01)
    (receptacleAtLocation Microwave_bar_01 loc_bar_02)
    (receptacleAtLocation CounterTop_bar_01 loc_bar_03)
    (openable Fridge_bar_01)
    (openable Microwave_bar_01)
    (objectType Potato_bar_01 PotatoType)
    (objectType Egg_bar_01 EggType)
    (pickupable Potato_bar_01)
    (pickupable Egg_bar_01)
    (heatable Potato_bar_01)
    (heatable Egg_bar_01)
    (inReceptacle Potato_bar_01 Fridge_bar_01)
    (inReceptacle Egg_bar_01 Fridge_bar_01)
    (objectAtLocation Potato_bar_01 loc_bar_01)
    (objectAtLocation Egg_bar_01 loc_bar_01)
    (canContain FridgeType PotatoType)
    (canContain MicrowaveType PotatoType)
    (canContain CounterTopType PotatoType)
    (canContain FridgeType EggType)
    (canContain MicrowaveType EggType)
    (canContain CounterTopType EggType)
)
(:goal
    (exists (?r - receptacle)
        (exists (?o - object)
            (and
                (objectType ?o PotatoType)
                (receptacleType ?r CounterTopType)
                (isHot ?o)
                (inReceptacle ?o ?r)
            )
        )
    )
)
)
